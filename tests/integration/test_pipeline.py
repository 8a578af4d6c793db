"""The scoring pipeline end to end on the real broker: worker process, config topic, tenant topics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.events import DeadLetter, ScoreResult
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed
from tests.support.poison import POISON, STRICT_INTENT
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b")


@pytest.fixture(scope="module")
def predictors(store_dir: Path) -> dict[str, Predictor]:
    return {
        "fraud-v1": small_predictor(store_dir, name="fraud", version="1", seed=1),
        "fraud-v2": small_predictor(store_dir, name="fraud", version="2", seed=2, max_depth=4),
        "strict-v1": small_predictor(store_dir, name="strict", version="1", seed=3, missing_policy="reject"),
    }


@pytest.fixture
def worker(kafka: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    yield process
    process.stop()


def _event_values(n: int, seed: int, prefix: str, **extra: object) -> tuple[np.ndarray, list[bytes]]:
    X, _ = generate_events(n, seed=seed)
    return X, [
        orjson.dumps({"event_id": f"{prefix}{i}", "intent": "card-fraud", "features": f, **extra})
        for i, f in enumerate(events_as_dicts(X))
    ]


def test_events_of_two_tenants_come_out_scored_once_on_their_own_output(
    kafka: BrokerHandle, topic_names: TopicNames, predictors: dict[str, Predictor], store_dir: Path, worker: WorkerProcess
) -> None:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, TENANTS, partitions=2)
    config = deployment(TENANTS, {"fraud-v1": predictors["fraud-v1"]}, {(t, "card-fraud"): ("fraud-v1", ()) for t in TENANTS})
    assert publish(kafka.bootstrap, topic_names, config, predictors, store_dir) == 1
    sent: dict[str, np.ndarray] = {}
    for seed, tenant in enumerate(TENANTS):
        # Each payload claims to belong to the other tenant: it must make no difference.
        X, values = _event_values(500, seed, f"{tenant}-", tenant=TENANTS[1 - seed])
        produce(kafka.bootstrap, topic_names.input_topic(tenant), [(v[:24], v) for v in values])
        sent[tenant] = X
    outputs = [topic_names.output_topic(t) for t in TENANTS]
    records = read_committed(kafka.bootstrap, outputs, expect=1000, timeout=90)
    assert len(records) == 1000, worker.log_tail()
    for tenant in TENANTS:
        results = [ScoreResult.model_validate_json(v) for topic, _, v in records if topic == topic_names.output_topic(tenant)]
        assert len(results) == 500
        assert {r.tenant for r in results} == {tenant}
        assert all(r.event_id.startswith(f"{tenant}-") for r in results)
        by_id = {r.event_id: r.score for r in results}
        assert len(by_id) == 500  # one result per event
        offline = predictors["fraud-v1"].score_batch(sent[tenant]).mapped
        assert np.array_equal([by_id[f"{tenant}-{i}"] for i in range(500)], offline)
        assert {(r.predictor_id, r.config_version) for r in results} == {(predictors["fraud-v1"].id, 1)}


def test_poison_corpus_lands_on_the_dlq_and_good_events_around_it_are_scored(
    kafka: BrokerHandle, topic_names: TopicNames, predictors: dict[str, Predictor], store_dir: Path, worker: WorkerProcess
) -> None:
    tenant = "bank-a"
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, [tenant])
    config = deployment(
        [tenant],
        {"fraud-v1": predictors["fraud-v1"], "strict-v1": predictors["strict-v1"]},
        {(tenant, "card-fraud"): ("fraud-v1", ()), (tenant, STRICT_INTENT): ("strict-v1", ())},
    )
    publish(kafka.bootstrap, topic_names, config, predictors, store_dir)
    _, good = _event_values(len(POISON) + 1, 5, "good-")
    interleaved: list[tuple[bytes | None, bytes | None]] = []
    for index, (kind, value, _) in enumerate(POISON):
        interleaved += [(b"good", good[index]), (kind.encode(), value)]
    interleaved.append((b"good", good[-1]))
    produce(kafka.bootstrap, topic_names.input_topic(tenant), interleaved)

    records = read_committed(
        kafka.bootstrap, [topic_names.output_topic(tenant), topic_names.dlq_topic(tenant)], expect=len(interleaved), timeout=90
    )
    results = [ScoreResult.model_validate_json(v) for t, _, v in records if t == topic_names.output_topic(tenant)]
    letters = [DeadLetter.model_validate_json(v) for t, _, v in records if t == topic_names.dlq_topic(tenant)]
    assert sorted(r.event_id for r in results) == sorted(f"good-{i}" for i in range(len(POISON) + 1)), worker.log_tail()
    assert len(letters) == len(POISON)
    expected = Counter(reason for _, _, reason in POISON)
    assert Counter(letter.reason_code for letter in letters) == expected
    assert all(letter.source.topic == topic_names.input_topic(tenant) for letter in letters)
    assert sorted(letter.source.offset for letter in letters) == list(range(1, 2 * len(POISON), 2))


def test_a_tenant_added_later_is_scored_without_a_restart(
    kafka: BrokerHandle, topic_names: TopicNames, predictors: dict[str, Predictor], store_dir: Path, worker: WorkerProcess
) -> None:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-a"])
    one = {"fraud-v1": predictors["fraud-v1"]}
    publish(
        kafka.bootstrap, topic_names, deployment(["bank-a"], one, {("bank-a", "card-fraud"): ("fraud-v1", ())}), one, store_dir
    )
    _, first = _event_values(50, 1, "a-")
    produce(kafka.bootstrap, topic_names.input_topic("bank-a"), [(None, v) for v in first])
    assert len(read_committed(kafka.bootstrap, [topic_names.output_topic("bank-a")], expect=50)) == 50

    # A new tenant: its topics and its route appear while the worker runs.
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), topic_names, ["bank-new"])
    routes = {(t, "card-fraud"): ("fraud-v1", ()) for t in ("bank-a", "bank-new")}
    assert publish(kafka.bootstrap, topic_names, deployment(["bank-a", "bank-new"], one, routes), one, store_dir) == 2
    _, later = _event_values(50, 2, "new-")
    produce(kafka.bootstrap, topic_names.input_topic("bank-new"), [(None, v) for v in later])
    records = read_committed(kafka.bootstrap, [topic_names.output_topic("bank-new")], expect=50, timeout=60)
    results = [ScoreResult.model_validate_json(v) for _, _, v in records]
    assert sorted(r.event_id for r in results) == sorted(f"new-{i}" for i in range(50)), worker.log_tail()
    assert {r.tenant for r in results} == {"bank-new"} and worker.alive()
