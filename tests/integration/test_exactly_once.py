"""Exactly once under crashes: SIGKILLed and restarted workers, and a rebalance between two workers.

While 20,000 events flow, workers are killed at random moments; the read_committed output must then
hold exactly one result per input event id: none lost, none doubled.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b")
EVENTS = 20_000


def _deploy(kafka: BrokerHandle, names: TopicNames, predictor: Predictor, store_dir: Path) -> None:
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), names, TENANTS, partitions=3)
    config = deployment(TENANTS, {"fraud-v1": predictor}, {(t, "card-fraud"): ("fraud-v1", ()) for t in TENANTS})
    publish(kafka.bootstrap, names, config, {"fraud-v1": predictor}, store_dir)


def _produce_steadily(kafka: BrokerHandle, names: TopicNames, seconds: float) -> threading.Thread:
    """EVENTS events split over both tenants, in chunks spread over `seconds`."""
    X, _ = generate_events(EVENTS, seed=11)
    features = events_as_dicts(X)
    chunks = 40

    def run() -> None:
        for chunk in range(chunks):
            per_tenant: dict[str, list[tuple[bytes, bytes]]] = {t: [] for t in TENANTS}
            for i in range(chunk * EVENTS // chunks, (chunk + 1) * EVENTS // chunks):
                tenant = TENANTS[i % 2]
                event_id = f"ev-{i}"
                per_tenant[tenant].append((event_id.encode(), orjson.dumps({"event_id": event_id, "features": features[i]})))
            for tenant, records in per_tenant.items():
                produce(kafka.bootstrap, names.input_topic(tenant), records)
            time.sleep(seconds / chunks)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _assert_exactly_once(kafka: BrokerHandle, names: TopicNames, logs: str) -> None:
    outputs = [names.output_topic(t) for t in TENANTS]
    records = read_committed(kafka.bootstrap, outputs, expect=EVENTS, timeout=180, settle=3.0)
    ids = Counter(orjson.loads(value)["event_id"] for _, _, value in records)
    missing = EVENTS - sum(1 for i in range(EVENTS) if f"ev-{i}" in ids)
    doubled = {event_id: n for event_id, n in ids.items() if n > 1}
    assert missing == 0 and not doubled, f"missing={missing} doubled={list(doubled.items())[:5]}\n{logs}"
    assert len(records) == EVENTS


def test_sigkilled_and_restarted_worker_loses_and_doubles_nothing(
    kafka: BrokerHandle, topic_names: TopicNames, predictor: Predictor, store_dir: Path, tmp_path: Path
) -> None:
    _deploy(kafka, topic_names, predictor, store_dir)
    rng = random.Random(20261129)
    worker = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    producer = _produce_steadily(kafka, topic_names, seconds=20)
    kills = 0
    try:
        while producer.is_alive() or kills < 4:
            time.sleep(rng.uniform(1.5, 4.0))
            worker.kill()
            kills += 1
            worker.start()
        producer.join()
        _assert_exactly_once(kafka, topic_names, worker.log_tail(60))
    finally:
        worker.stop()
    assert kills >= 4


def test_two_workers_rebalancing_and_a_crash_lose_and_double_nothing(
    kafka: BrokerHandle, topic_names: TopicNames, predictor: Predictor, store_dir: Path, tmp_path: Path
) -> None:
    _deploy(kafka, topic_names, predictor, store_dir)
    first = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w1", tmp_path).start()
    second = WorkerProcess(kafka.bootstrap, topic_names.namespace, "w2", tmp_path)
    producer = _produce_steadily(kafka, topic_names, seconds=20)
    try:
        time.sleep(4)
        second.start()  # a rebalance splits the partitions while events flow
        time.sleep(5)
        first.kill()  # its partitions move to the second worker once its session expires
        time.sleep(12)
        first.start()  # and back again: another rebalance
        producer.join()
        _assert_exactly_once(kafka, topic_names, first.log_tail(30) + "\n---\n" + second.log_tail(30))
        assert "assigned" in second.log_tail(200)
    finally:
        first.stop()
        second.stop()
