"""`muse replay` against the real broker and a real worker: the live config's replay reproduces every
live score (and shadow score) bit for bit; a candidate differs exactly where its routes differ;
labels are joined latest-wins, early, late and missing alike; the workers' group never moves."""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.settings import consumer_config
from muse_stream.config.state import read_config_log
from muse_stream.events import ScoreResult, ShadowResult
from muse_stream.predictors import Predictor
from muse_stream.replay.run import read_dataset
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import DATA_PATH_KINDS, TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.predictors import artifact_bytes, small_predictor

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b")
PARTITIONS = 2
N = 300  # events per tenant
WHEN = datetime(2026, 3, 1, 12, tzinfo=UTC)


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def events(tenant: str, seed: int) -> list[tuple[bytes, bytes]]:
    X, _ = generate_events(N, seed=seed)
    values = [orjson.dumps({"event_id": f"{tenant}-e{i}", "features": f}) for i, f in enumerate(events_as_dicts(X))]
    return [(f"{tenant}-e{i}".encode(), v) for i, v in enumerate(values)]


def write_labels(path: Path, rows: list[tuple[str, int, datetime]]) -> Path:
    ids, labels, when = zip(*rows, strict=True)
    pq.write_table(
        pa.table(
            {"event_id": list(ids), "label": list(labels), "labelled_at": pa.array(list(when), pa.timestamp("ms", tz="UTC"))}
        ),
        path,
    )
    return path


def candidate_file(directory: Path, predictors: dict[str, Predictor]) -> Path:
    """bank-a as live (v1, shadow v2), bank-b moved to v2: a candidate deployment file."""
    directory.mkdir()
    models, specs = [], []
    for name, predictor in predictors.items():
        [(sha, data)] = artifact_bytes(predictor, directory.parent / "store").items()
        (directory / f"{sha}.json").write_bytes(data)
        predictor.spec.save(directory / f"{name}.json")
        ref = predictor.spec.model
        models.append(f'[[models]]\nname = "{ref.name}"\nversion = "{ref.version}"\npath = "{sha}.json"\n')
        specs.append(f'[[predictors]]\nname = "{name}"\nspec = "{name}.json"\n')
    text = (
        '[[intents]]\nname = "card-fraud"\n'
        + "".join(f'[[tenants]]\nname = "{t}"\ndefault_intent = "card-fraud"\n' for t in TENANTS)
        + "".join(models)
        + "".join(specs)
        + (
            '[[routes]]\ntenant = "bank-a"\nintent = "card-fraud"\nlive = "fraud-v1"\nshadows = ["fraud-v2"]\n'
            '[[routes]]\ntenant = "bank-b"\nintent = "card-fraud"\nlive = "fraud-v2"\n'
        )
    )
    path = directory / "cand.toml"
    path.write_text(text)
    return path


def committed_offsets(bootstrap: str, names: TopicNames) -> dict[tuple[str, int], int]:
    """The workers' group's committed offsets (an OffsetFetch: this consumer never joins the group)."""
    consumer = Consumer(consumer_config(bootstrap, names.worker_group))
    try:
        partitions = [TopicPartition(names.input_topic(t), p) for t in TENANTS for p in range(PARTITIONS)]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)}
    finally:
        consumer.close()


def test_replay_reproduces_live_scores_and_joins_labels(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ["--namespace", topic_names.namespace]
    store = tmp_path / "store"
    predictors = {
        "fraud-v1": small_predictor(store, version="1", seed=1),
        "fraud-v2": small_predictor(store, version="2", seed=2, max_depth=4),
    }
    ensure_tenant_topics(
        TopicAdmin(kafka.bootstrap), topic_names, TENANTS, PARTITIONS, kinds=DATA_PATH_KINDS
    )  # no labels topic yet
    live = deployment(TENANTS, predictors, {(t, "card-fraud"): ("fraud-v1", ("fraud-v2",)) for t in TENANTS})
    assert publish(kafka.bootstrap, topic_names, live, predictors, store) == 1

    # Early labels (before the events exist), including one that a later label overrides.
    early = write_labels(tmp_path / "early.parquet", [(f"bank-a-e{i}", i % 2, WHEN) for i in range(50)])
    assert main(["labels", *ns, "load", str(early), "--tenant", "bank-a"]) == 0
    assert "published 50 labels (25 fraud, 25 genuine)" in capsys.readouterr().out

    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    try:
        produced = {t: events(t, seed) for t, seed in zip(TENANTS, (11, 12), strict=True)}
        poison = [(b"bad-1", b"not json"), (b"bad-2", orjson.dumps({"event_id": "x", "intent": "nope", "features": {}}))]
        for tenant, records in produced.items():
            produce(kafka.bootstrap, topic_names.input_topic(tenant), records + (poison if tenant == "bank-b" else []))
        outputs = read_committed(kafka.bootstrap, [topic_names.output_topic(t) for t in TENANTS], expect=2 * N, timeout=90)
        shadows = read_committed(kafka.bootstrap, [topic_names.shadow_topic], expect=2 * N, timeout=60)
        assert len(outputs) == 2 * N and len(shadows) == 2 * N, worker.log_tail()
        time.sleep(1)  # the last transaction's offsets are committed with it; let the committer settle
        before = committed_offsets(kafka.bootstrap, topic_names)
        assert sum(before.values()) == 2 * N + len(poison)

        # Late labels (after the events were scored), a relabel of an early one, and none for the rest.
        late = write_labels(
            tmp_path / "late.parquet",
            [(f"bank-a-e{i}", 1, WHEN + timedelta(days=30)) for i in range(50, 100)]
            + [("bank-a-e0", 1, WHEN + timedelta(days=40))],
        )
        assert main(["labels", *ns, "load", str(late), "--tenant", "bank-a"]) == 0

        out = tmp_path / "replay"
        cand = candidate_file(tmp_path / "cand", predictors)
        code = main(
            [
                "replay",
                *ns,
                "--all-tenants",
                "--config",
                "live",
                "--config-version",
                "1",
                "--config",
                str(cand),
                "--out",
                str(out),
            ]
        )
        printed = capsys.readouterr()
        assert code == 0, printed.err
        after = committed_offsets(kafka.bootstrap, topic_names)
    finally:
        worker.stop()
    assert after == before  # the replay neither committed for nor moved the workers' group
    assert read_config_log(kafka.bootstrap, topic_names).version == 1  # the candidate was never published

    assert f"replayed {2 * N + len(poison):,} events" in printed.out
    assert "dead letters with live: malformed_json 1, unknown_intent 1" in printed.out
    assert "bank-a: 300 events, 100 labelled" in printed.out and "bank-b: 302 events, 0 labelled" in printed.out
    rows = read_dataset(out).to_table().to_pylist()
    by = {(r["config"], r["role"], r["tenant"], r["event_id"], r["predictor_id"]): r for r in rows}
    assert len(by) == len(rows)  # one row per event, config, role and predictor

    # Determinism: every live result, and every shadow result, bit for bit, replayed with live and with v1.
    v1, v2 = predictors["fraud-v1"].id, predictors["fraud-v2"].id
    for _, _, value in outputs:
        result = ScoreResult.model_validate_json(value)
        for tag in ("live", "v1"):
            row = by[(tag, "live", result.tenant, result.event_id, result.predictor_id)]
            assert bits(row["score"]) == bits(result.score), (tag, result.event_id)
            assert row["config_version"] == result.config_version == 1 and row["intent"] == result.intent
            assert row["event_timestamp"] == datetime.fromtimestamp(result.timings.event_timestamp_ms / 1000, UTC)
    for _, _, value in shadows:
        shadow = ShadowResult.model_validate_json(value)
        row = by[("live", "shadow", shadow.tenant, shadow.event_id, shadow.predictor_id)]
        assert [bits(row[c]) for c in ("raw_score", "corrected_score", "score")] == [
            bits(shadow.raw_score),
            bits(shadow.corrected_score),
            bits(shadow.score),
        ]

    # The candidate differs from live exactly where its routes differ: bank-b is scored by v2 (its
    # scores are the live shadow's), bank-a's scores are live's, bit for bit.
    live_rows = {(r["tenant"], r["event_id"]): r for r in rows if r["config"] == "live" and r["role"] == "live"}
    cand_rows = {(r["tenant"], r["event_id"]): r for r in rows if r["config"] == "cand" and r["role"] == "live"}
    assert cand_rows.keys() == live_rows.keys()
    for key, row in cand_rows.items():
        if row["dead_letter_reason"] is not None:
            assert live_rows[key]["dead_letter_reason"] == row["dead_letter_reason"]
            continue
        if key[0] == "bank-a":
            assert row["predictor_id"] == v1 and bits(row["score"]) == bits(live_rows[key]["score"])
        else:
            assert row["predictor_id"] == v2 and row["config_version"] is None
            assert bits(row["score"]) == bits(by[("live", "shadow", "bank-b", key[1], v2)]["score"])
    changed = [key for key, row in cand_rows.items() if row["score"] != live_rows[key]["score"]]
    assert {tenant for tenant, _ in changed} == {"bank-b"} and len(changed) > 0.9 * N

    # Labels: early and late joined, the relabel wins, the rest (and bank-b, without a labels topic) null.
    labels = {event_id: (row["label"], row["labelled_at"]) for (tenant, event_id), row in live_rows.items() if tenant == "bank-a"}
    assert labels["bank-a-e0"] == (1, WHEN + timedelta(days=40))
    assert all(labels[f"bank-a-e{i}"] == (i % 2, WHEN) for i in range(1, 50))
    assert all(labels[f"bank-a-e{i}"] == (1, WHEN + timedelta(days=30)) for i in range(50, 100))
    assert all(labels[f"bank-a-e{i}"] == (None, None) for i in range(100, N))
    assert all(row["label"] is None for (tenant, _), row in live_rows.items() if tenant == "bank-b")
    assert all(r["day"] == r["event_timestamp"].date().isoformat() for r in rows)  # the hive partition: UTC day


def test_windows_by_time_and_offsets_and_one_line_errors(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    ns = ["--namespace", topic_names.namespace]
    store = tmp_path / "store"
    predictors = {"fraud-v1": small_predictor(store, version="1", seed=1)}
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, TENANTS, partitions=PARTITIONS)
    publish(
        kafka.bootstrap,
        topic_names,
        deployment(TENANTS, predictors, {(t, "card-fraud"): ("fraud-v1", ()) for t in TENANTS}),
        predictors,
        store,
    )
    first = events("bank-a", 21)
    produce(kafka.bootstrap, topic_names.input_topic("bank-a"), first[:100])
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(1.5)
    produce(kafka.bootstrap, topic_names.input_topic("bank-a"), first[100:])

    def replay(name: str, *window: str) -> set[str]:
        code = main(["replay", *ns, "--tenant", "bank-a", "--config", "live", "--out", str(tmp_path / name), *window])
        assert code == 0, capsys.readouterr().err
        return {r["event_id"] for r in read_dataset(tmp_path / name).to_table().to_pylist()}

    ids = [key.decode() for key, _ in first]
    assert replay("after", "--from", middle.isoformat()) == set(ids[100:])
    assert replay("before", "--to", middle.isoformat()) == set(ids[:100])
    offsets = replay("offsets", "--from-offset", "5", "--to-offset", "15")
    assert len(offsets) == 10 * PARTITIONS and offsets < set(ids)
    # Shards: each takes whole partitions; together they read every event exactly once, into one directory.
    seen = [replay("sharded", "--shard", f"{k}/3") for k in (1, 2, 3)]  # what the directory holds after each
    assert set() < seen[0] < seen[1] == seen[2] == set(ids)  # 2 partitions: shard 3 gets none
    rows = read_dataset(tmp_path / "sharded").to_table().to_pylist()
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
    capsys.readouterr()

    def error(*args: str) -> str:
        assert main(["replay", *ns, "--out", str(tmp_path / "never"), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("muse: error: "), err
        return err

    assert "unknown tenant 'bank-z'" in error("--tenant", "bank-z", "--config", "live")
    assert "config version 7 is not in the history topic" in error("--tenant", "bank-a", "--config-version", "7")
    assert "holds no events" in error("--tenant", "bank-b", "--config", "live")
    assert "holds no events" in error("--tenant", "bank-a", "--config", "live", "--from", "2999-01-01")
    assert "--shard '3/2' is not K/N" in error("--tenant", "bank-a", "--config", "live", "--shard", "3/2")
    assert "not an ISO 8601 time" in error("--tenant", "bank-a", "--config", "live", "--from", "soon")
    pq.write_table(pa.table({"event_id": ["e"]}), tmp_path / "bad.parquet")
    assert main(["labels", *ns, "load", str(tmp_path / "bad.parquet"), "--tenant", "bank-a"]) == 2
    assert "lacks column(s) label, labelled_at" in capsys.readouterr().err
    write_labels(tmp_path / "l.parquet", [("e", 1, WHEN)])
    assert main(["labels", *ns, "load", str(tmp_path / "l.parquet"), "--tenant", "bank-z"]) == 2
    assert "unknown tenant 'bank-z'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_each_config_version_from_history_reproduces_the_events_it_scored(
    kafka: BrokerHandle,
    topic_names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Versions rebuilt from the history topic that the real publisher wrote: the events a worker
    scored under version 1 replay bit for bit with --config-version 1, those under 2 with 2."""
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    store = tmp_path / "store"
    predictors = {
        "fraud-v1": small_predictor(store, version="1", seed=1),
        "fraud-v2": small_predictor(store, version="2", seed=2, max_depth=4),
    }
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, TENANTS, partitions=PARTITIONS)
    routes = {(t, "card-fraud"): ("fraud-v1", ()) for t in TENANTS}
    assert publish(kafka.bootstrap, topic_names, deployment(TENANTS, predictors, routes), predictors, store) == 1
    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    try:
        produced = events("bank-b", 31)
        produce(kafka.bootstrap, topic_names.input_topic("bank-b"), produced[:150])
        assert len(read_committed(kafka.bootstrap, [topic_names.output_topic("bank-b")], expect=150, timeout=90)) == 150
        routes[("bank-b", "card-fraud")] = ("fraud-v2", ("fraud-v1",))
        assert publish(kafka.bootstrap, topic_names, deployment(TENANTS, predictors, routes), predictors, store) == 2
        time.sleep(3)  # the worker follows the config topic within 2 s
        produce(kafka.bootstrap, topic_names.input_topic("bank-b"), produced[150:])
        outputs = read_committed(kafka.bootstrap, [topic_names.output_topic("bank-b")], expect=N, timeout=90)
    finally:
        worker.stop()
    results = [ScoreResult.model_validate_json(value) for _, _, value in outputs]
    assert {r.config_version for r in results} == {1, 2}, worker.log_tail()
    out = tmp_path / "replay"
    assert (
        main(
            [
                "replay",
                "--namespace",
                topic_names.namespace,
                "--tenant",
                "bank-b",
                "--config-version",
                "1",
                "--config-version",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err
    rows = {(r["config"], r["event_id"]): r for r in read_dataset(out).to_table().to_pylist() if r["role"] == "live"}
    for result in results:
        row = rows[(f"v{result.config_version}", result.event_id)]
        assert row["predictor_id"] == result.predictor_id and bits(row["score"]) == bits(result.score)
