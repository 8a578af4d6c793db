"""Publishing config on a real broker: one transaction per change set, fencing, history, CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from config_support import artifacts, deployment, model_bytes, write_topology
from confluent_kafka import KafkaException, Producer

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import read_to_end
from muse_stream.clients.settings import producer_config, transactional_producer_config
from muse_stream.config.artifact_topic import KafkaArtifactStore
from muse_stream.config.deployment import MARKER_KEY
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.config.state import read_config_log
from muse_stream.models.store import ArtifactError, sha256_hex
from muse_stream.topics import TopicNames

pytestmark = pytest.mark.kafka


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[tuple[int, str, bytes | None]]:
    return [(m.offset(), m.key().decode(), m.value()) for m in read_to_end(bootstrap, topic, **{"isolation.level": isolation})]


@pytest.fixture
def publisher(kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> ConfigPublisher:
    return ConfigPublisher(
        kafka.bootstrap, topic_names, artifact_store=KafkaArtifactStore(kafka.bootstrap, topic_names, tmp_path / "cache")
    )


def test_each_change_set_is_one_transaction_with_a_marker_and_a_history_record(
    publisher: ConfigPublisher, kafka: BrokerHandle, topic_names: TopicNames
) -> None:
    first = publisher.publish(deployment(), artifacts(1, 2))
    assert first.version == 1 and len(first.uploaded) == 2
    assert publisher.publish(deployment(), artifacts(1, 2)).version == 1  # nothing differs: no new version
    moved = deployment({("bank-a", "card-fraud"): ("fraud-v2", ()), ("bank-b", "card-fraud"): ("fraud-v2", ())})
    second = publisher.publish(moved)  # artifacts already on the models topic
    assert second.version == 2 and second.uploaded == ()
    assert "route/bank-c/account-takeover" in second.diff.deletes and "tenant/bank-c" in second.diff.deletes

    records = read_topic(kafka.bootstrap, topic_names.config_topic)
    markers = [(offset, orjson.loads(value)["body"]) for offset, key, value in records if key == MARKER_KEY]
    assert [m["config_version"] for _, m in markers] == [1, 2]
    # every record of version 2 sits between marker 1 and marker 2, and the marker lists exactly them
    between = [(key, value) for offset, key, value in records if markers[0][0] < offset < markers[1][0]]
    assert sorted(key for key, _ in between) == sorted(markers[1][1]["changed"]) == list(second.diff.changed)
    assert all(orjson.loads(v)["config_version"] == 2 for _, v in between if v is not None)

    history = read_topic(kafka.bootstrap, topic_names.config_history_topic)
    assert [key for _, key, _ in history] == ["1", "2"]
    changes = orjson.loads(history[1][2])["changes"]
    assert changes["route/bank-c/account-takeover"] is None and changes["route/bank-a/card-fraud"]["live"] == "fraud-v2"
    live = read_config_log(kafka.bootstrap, topic_names)
    assert live.version == 2 and live.deployment().bodies() == moved.bodies()


def test_a_concurrent_publisher_is_fenced_and_its_records_never_show(
    publisher: ConfigPublisher, kafka: BrokerHandle, topic_names: TopicNames
) -> None:
    publisher.publish(deployment(), artifacts(1, 2))
    # operator A: same transactional id, half a change set written, not yet committed
    other = Producer(transactional_producer_config(kafka.bootstrap, publisher.transactional_id))
    other.init_transactions()
    other.begin_transaction()
    other.produce(topic_names.config_topic, key=b"route/bank-a/card-fraud", value=b"{half a change}")
    other.flush()
    # operator B publishes: init_transactions fences A and aborts its open transaction
    result = publisher.publish(deployment({(t, "card-fraud"): ("fraud-v2", ()) for t in ("bank-a", "bank-b")}))
    assert result.version == 2
    with pytest.raises(KafkaException) as fenced:
        other.commit_transaction()
    assert fenced.value.args[0].fatal()
    values = [value for _, _, value in read_topic(kafka.bootstrap, topic_names.config_topic)]
    assert b"{half a change}" not in values
    assert b"{half a change}" in [v for _, _, v in read_topic(kafka.bootstrap, topic_names.config_topic, "read_uncommitted")]
    assert read_config_log(kafka.bootstrap, topic_names).rejected == []


def test_kafka_artifact_store_round_trips_and_verifies(
    kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path, publisher: ConfigPublisher
) -> None:
    publisher.ensure_topics()
    writer = KafkaArtifactStore(kafka.bootstrap, topic_names, tmp_path / "writer")
    data = model_bytes(1)
    digest = writer.put(data)
    assert digest == sha256_hex(data) and writer.put(data) == digest
    # a forged record (key is not the hash of its value) is never served
    forged = "f" * 64
    producer = Producer(producer_config(kafka.bootstrap))
    producer.produce(topic_names.models_topic, key=forged.encode(), value=b"not the model")
    producer.flush(10)
    reader = KafkaArtifactStore(kafka.bootstrap, topic_names, tmp_path / "reader")  # another machine: empty cache
    assert reader.exists(digest) and reader.get(digest) == data
    assert not reader.exists(forged)
    with pytest.raises(ArtifactError, match=rf"{forged} is not on the models topic {topic_names.models_topic}"):
        reader.get(forged)


def test_cli_diff_apply_show(
    kafka: BrokerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    namespace = f"t{uuid.uuid4().hex[:12]}"
    path = write_topology(tmp_path)
    cli = ["config", "--namespace", namespace]
    assert main([*cli, "show"]) == 0
    assert orjson.loads(capsys.readouterr().out)["config_version"] == 0
    assert main([*cli, "diff", str(path)]) == 0
    assert "+ route/bank-a/card-fraud" in capsys.readouterr().out
    assert main([*cli, "apply", str(path)]) == 0
    out = capsys.readouterr().out
    assert "uploaded model" in out and out.strip().endswith("version 1 is live")
    path.write_text(path.read_text().replace('live = "fraud-v2"\n', 'live = "fraud-v1"\n', 1))
    assert main([*cli, "diff", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["live version 1 -> 2: 1 key(s) change", "~ route/bank-a/account-takeover"]
    assert main([*cli, "apply", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("version 2 is live")
    assert main([*cli, "apply", str(path)]) == 0
    assert "no changes: version 2 is live" in capsys.readouterr().out
    assert main([*cli, "show"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["config_version"] == 2 and shown["config"]["route/bank-a/account-takeover"]["live"] == "fraud-v1"
    assert set(shown["config"]) == set(read_config_log(kafka.bootstrap, TopicNames(namespace)).bodies())


def test_a_lost_version_marker_never_makes_a_version_repeat_and_republishing_restores_it(
    publisher: ConfigPublisher, kafka: BrokerHandle, tmp_path: Path
) -> None:
    """A tombstone written by hand on meta/version, once compacted, leaves the entries without a marker
    (the watcher then has no version to apply) while the history still holds every version."""
    moved = deployment({("bank-a", "card-fraud"): ("fraud-v2", ())})
    publisher.publish(deployment(), artifacts(1, 2))
    publisher.publish(moved)
    # The compacted state of that config topic, marker gone, in a second namespace with the same history.
    lost = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    repaired = ConfigPublisher(
        kafka.bootstrap, lost, artifact_store=KafkaArtifactStore(kafka.bootstrap, lost, tmp_path / "cache2")
    )
    repaired.ensure_topics()
    latest = {key: value for _, key, value in read_topic(kafka.bootstrap, publisher.names.config_topic)}
    producer = Producer(producer_config(kafka.bootstrap))
    for key, value in latest.items():
        if key != MARKER_KEY and value is not None:
            producer.produce(lost.config_topic, key=key.encode(), value=value)
    for _, key, value in read_topic(kafka.bootstrap, publisher.names.config_history_topic):
        producer.produce(lost.config_history_topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0
    assert read_config_log(kafka.bootstrap, lost).version == 0  # what a watcher would see: no version at all

    restored = repaired.publish(moved, artifacts(1, 2))  # nothing differs, but the marker is missing
    assert restored.version == 3 and restored.diff.empty
    live = read_config_log(kafka.bootstrap, lost)
    assert live.version == 3 and live.deployment().bodies() == moved.bodies()
    assert repaired.publish(deployment()).version == 4
    assert [key for _, key, _ in read_topic(kafka.bootstrap, lost.config_history_topic)] == ["1", "2", "3", "4"]


def test_apply_creates_the_declared_tenants_topics(
    kafka: BrokerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config apply` on a fresh namespace: every declared tenant gets its topics, with the partitions
    declared (`partitions` in [[tenants]]) or the default; existing topics are kept; a second apply
    creates nothing."""
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    admin = TopicAdmin(kafka.bootstrap)
    admin.ensure(names.tenant_topic_specs("bank-c", partitions=2))  # made earlier with `muse tenants add`
    path = write_topology(tmp_path)
    path.write_text(path.read_text().replace('name = "bank-a"\n', 'name = "bank-a"\npartitions = 3\n', 1))
    cli = ["config", "--namespace", names.namespace]
    assert main([*cli, "apply", str(path)]) == 0
    out = capsys.readouterr().out
    partitions = admin.existing_topics()
    expected = {
        ("bank-a", "input"): 3,
        ("bank-a", "output"): 3,
        ("bank-a", "dlq"): 1,
        ("bank-b", "input"): 1,
        ("bank-b", "output"): 1,
        ("bank-b", "dlq"): 1,
        ("bank-c", "input"): 2,
        ("bank-c", "output"): 2,
        ("bank-c", "dlq"): 1,
    }
    assert {key: partitions[names.tenant_topic(*key)] for key in expected} == expected
    for (tenant, kind), count in expected.items():
        assert (f"created topic {names.tenant_topic(tenant, kind)}  partitions={count}" in out) == (tenant != "bank-c")
    assert out.strip().endswith("version 1 is live")
    assert main(["tenants", "--namespace", names.namespace, "list"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["bank-a", "bank-b", "bank-c"]

    assert main([*cli, "apply", str(path)]) == 0
    assert "created topic" not in capsys.readouterr().out

    # Declaring more partitions than a tenant has is refused before anything is published.
    path.write_text(path.read_text().replace("partitions = 3\n", "partitions = 4\n", 1))
    assert main([*cli, "apply", str(path)]) == 2
    err = capsys.readouterr().err
    assert "has 3 partitions, fewer than the 4 asked for" in err and "muse tenants alter bank-a --partitions 4" in err
    assert read_config_log(kafka.bootstrap, names).version == 1
