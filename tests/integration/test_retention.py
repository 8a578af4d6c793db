"""Retention against the real broker: input and labels topics are created with a 7-day retention
that `muse tenants list` shows and an operator may change without breaking the workers' topic
checks; a replay window opening before the oldest record still on a partition is a one-line error."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.synthetic_deployment import artifact_bytes
from muse_stream.topics import DATA_PATH_KINDS, DEFAULT_RETENTION_MS, TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka


def test_default_retention_shown_changeable_and_checked_by_replay(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ["--namespace", topic_names.namespace]
    admin = TopicAdmin(kafka.bootstrap)
    ensure_tenant_topics(admin, topic_names, ["bank-a"], 2)
    input_topic = topic_names.input_topic("bank-a")
    configs = admin.topic_configs([input_topic, topic_names.labels_topic("bank-a"), topic_names.output_topic("bank-a")])
    assert (
        configs[input_topic]["retention.ms"]
        == configs[topic_names.labels_topic("bank-a")]["retention.ms"]
        == str(DEFAULT_RETENTION_MS)
    )
    assert configs[topic_names.output_topic("bank-a")]["retention.ms"] != str(DEFAULT_RETENTION_MS)

    # An operator keeps bank-a's input one day: the workers' ensure-and-check of the data path still passes.
    plain = AdminClient({"bootstrap.servers": kafka.bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        input_topic,
        incremental_configs=[ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)],
    )
    for future in plain.incremental_alter_configs([resource]).values():
        future.result()
    ensure_tenant_topics(admin, topic_names, ["bank-a"], 2, kinds=DATA_PATH_KINDS)
    listing = subprocess.run(
        [sys.executable, "-m", "muse_stream.cli", "tenants", "list", *ns],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MUSE_BOOTSTRAP": kafka.bootstrap, "PATH": "/usr/bin:/bin"},
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.startswith("bank-a\tpartitions=2\tretention=1d (labels 7d)\t"), listing.stdout  # only the input changed

    store = tmp_path / "store"
    predictors = {"fraud-v1": small_predictor(store, version="1", seed=1)}
    publish(
        kafka.bootstrap,
        topic_names,
        deployment(["bank-a"], predictors, {("bank-a", "card-fraud"): ("fraud-v1", ())}),
        predictors,
        store,
    )
    X, _ = generate_events(120, seed=3)
    start = int(time.time() * 1000) - 3_600_000  # an hour ago, one second apart
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for i, features in enumerate(events_as_dicts(X)):
        producer.produce(
            input_topic,
            key=f"e{i}".encode(),
            value=orjson.dumps({"event_id": f"e{i}", "features": features}),
            partition=i % 2,
            timestamp=start + 1000 * i,
        )
    assert producer.flush(30) == 0
    # Partition 0's offsets 0..29 go, as retention would remove them (event e60 is at offset 30).
    [future] = plain.delete_records([TopicPartition(input_topic, 0, 30)]).values()
    assert future.result().low_watermark == 30

    def replay(name: str, *window: str) -> int:
        return main(["replay", *ns, "--tenant", "bank-a", "--config", "live", "--out", str(tmp_path / name), *window])

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat()

    capsys.readouterr()
    assert replay("early", "--from", iso(start - 60_000)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"muse: error: the window starts at {iso(start - 60_000)}, before the oldest record still on {input_topic} "
        f"partition 0, which is from {iso(start + 60_000)} (offset 30): older records are gone (retention); "
        f"replay from --from {iso(start + 60_000)} or later\n"
    )
    assert replay("offsets", "--from-offset", "10") == 2
    assert f"--from-offset 10 is before the oldest offset still on {input_topic} partition 0 (30)" in capsys.readouterr().err
    assert not (tmp_path / "early").exists() and not (tmp_path / "offsets").exists()

    # Windows within what is left read as asked; so does no window at all (from the oldest record).
    assert replay("kept", "--from", iso(start + 60_000)) == 0
    assert "replayed 60 events" in capsys.readouterr().out  # e60..e119, both partitions
    assert replay("kept-offsets", "--from-offset", "30") == 0
    assert "replayed 60 events" in capsys.readouterr().out
    assert replay("all") == 0
    assert "replayed 90 events" in capsys.readouterr().out


def test_a_tenants_retention_is_set_by_tenants_alter_and_by_a_config_that_declares_it(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ["--namespace", topic_names.namespace]
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-a"], 1)
    plain = AdminClient({"bootstrap.servers": kafka.bootstrap})  # not ours: what the broker says

    def retention(tenant: str) -> dict[str, str]:
        topics = [topic_names.input_topic(tenant), topic_names.labels_topic(tenant), topic_names.output_topic(tenant)]
        futures = plain.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
        return {r.name.rpartition(".")[2]: f.result()["retention.ms"].value for r, f in futures.items()}

    day = 86_400_000
    assert main(["tenants", "alter", "bank-a", "--retention", "14d", *ns]) == 0
    assert f"was 7d         {topic_names.input_topic('bank-a')}  retention=14d" in capsys.readouterr().out
    after = retention("bank-a")
    assert after["input"] == after["labels"] == str(14 * day) and after["output"] != str(14 * day)
    assert main(["tenants", "list", *ns]) == 0
    assert capsys.readouterr().out.startswith("bank-a\tpartitions=1\tretention=14d\t")
    assert main(["tenants", "alter", "bank-a", "--retention", "two weeks", *ns]) == 2
    assert capsys.readouterr().err.startswith("muse: error: retention 'two weeks' is not a duration")

    # A config declaring retention sets it on a tenant whose topics exist and on one it creates;
    # a tenant that declares none keeps what it has.
    store = tmp_path / "store"
    predictors = {"fraud-v1": small_predictor(store, version="1", seed=1)}
    config = deployment(
        ["bank-a", "bank-b", "bank-c"], predictors, {(t, "card-fraud"): ("fraud-v1", ()) for t in ("bank-a", "bank-b", "bank-c")}
    )
    tenants = {t.name: t for t in config.tenants}
    config = config.model_copy(
        update={
            "tenants": (
                tenants["bank-a"].model_copy(update={"retention": "30d"}),
                tenants["bank-b"].model_copy(update={"retention": "36h"}),
                tenants["bank-c"],
            )
        }
    )
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-c"], 1)
    result = ConfigPublisher(kafka.bootstrap, topic_names).publish(config, artifact_bytes(predictors["fraud-v1"], store))
    a, b, c = retention("bank-a"), retention("bank-b"), retention("bank-c")
    assert a["input"] == a["labels"] == str(30 * day)
    assert b["input"] == b["labels"] == str(36 * 3_600_000)
    assert c["input"] == c["labels"] == str(DEFAULT_RETENTION_MS)
    assert result.retention_set == (
        f"{topic_names.input_topic('bank-a')} 14d -> 30d",
        f"{topic_names.labels_topic('bank-a')} 14d -> 30d",
    )  # bank-b's topics were created with theirs
