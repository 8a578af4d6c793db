"""One tenant's backlog does not starve another (muse_stream/pipeline/fairness.py), on the real broker.

Tenant A has a backlog of 100,000 events over 4 partitions; once the worker is busy with it, tenant B
sends 5 events. With fair shares B's results are visible after the worker has scored a few batches
more of A; without (``--no-fair-share``) they wait behind everything librdkafka prefetched of A,
here most of the backlog. Either way every event is scored exactly once: pausing and resuming A's
partitions loses and repeats nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from muse_stream.bench.progress import committed_counter
from muse_stream.broker import BrokerHandle
from muse_stream.clients.settings import consumer_config
from muse_stream.predictors import Predictor
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.deploy import TopicAdmin, deployment, ensure_tenant_topics, publish
from tests.support.kafka_io import WorkerProcess, produce, read_committed

pytestmark = pytest.mark.kafka
A, B = "bank-a", "bank-b"
A_PARTITIONS = 4
BACKLOG = 100_000  # with batches of 500, 40,000 (and once, under CI, 100,000) were drained before B's turn
MAX_BATCH = 100  # small transactions keep the worker busy with A's backlog for several seconds
B_EVENTS = 5
# With fair shares B's events go into the batch after the one being gathered when they are fetched;
# meanwhile A's small batches go on (measured: 0 to 3,495 of A's events, the most at load average
# 40). Without, they wait for what the consumer's queue holds of A's backlog (up to 100,000 records;
# no partition is fetched while it is full): 22,499-36,000 once the queue had filled, 10,500 when B
# was sent before it had (hence the second's wait before B sends).
BOUND = 6_000


def _values(n: int, prefix: str) -> list[tuple[bytes, bytes]]:
    X, _ = generate_events(min(n, 5000), seed=7)
    features = events_as_dicts(X)
    return [
        (f"{prefix}{i}".encode(), orjson.dumps({"event_id": f"{prefix}{i}", "features": features[i % len(features)]}))
        for i in range(n)
    ]


def _a_scored_while_b_waited(
    kafka: BrokerHandle, names: TopicNames, predictor: Predictor, store_dir: Path, log_dir: Path, fair: bool
) -> int:
    """How many of A's events the worker committed between B's events being sent and B's results
    being visible; then checks that every event of A and B was scored exactly once."""
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), names, [A], partitions=A_PARTITIONS)
    ensure_tenant_topics(TopicAdmin(kafka.bootstrap), names, [B], partitions=1)
    config = deployment([A, B], {"live": predictor}, {(t, "card-fraud"): ("live", ()) for t in (A, B)})
    publish(kafka.bootstrap, names, config, {"live": predictor}, store_dir)
    produce(kafka.bootstrap, names.input_topic(A), _values(BACKLOG, "a-"), **{"linger.ms": 20})
    a_scored = committed_counter(kafka.bootstrap, names.worker_group, [(names.input_topic(A), p) for p in range(A_PARTITIONS)])
    reader = Consumer(consumer_config(kafka.bootstrap, f"{names.namespace}-reader"))
    reader.assign([TopicPartition(names.output_topic(B), 0, 0)])
    worker = WorkerProcess(
        kafka.bootstrap,
        names.namespace,
        "w1",
        log_dir,
        "--max-batch",
        str(MAX_BATCH),
        *([] if fair else ["--no-fair-share"]),
    ).start()
    try:
        deadline = time.monotonic() + 120
        while a_scored() < 2 * MAX_BATCH:  # busy with A's backlog
            assert time.monotonic() < deadline and worker.alive(), worker.log_tail()
            time.sleep(0.05)
        time.sleep(1.0)  # librdkafka has prefetched what its queue takes of A's backlog
        produce(kafka.bootstrap, names.input_topic(B), _values(B_EVENTS, "b-"))
        when_sent = a_scored()
        # The scenario: B sends while A still has a backlog (else B waits for nothing either way).
        assert when_sent < BACKLOG - 20 * MAX_BATCH, f"A's backlog was drained ({when_sent:,}) before B sent"
        seen = 0
        while seen < B_EVENTS:
            assert time.monotonic() < deadline and worker.alive(), worker.log_tail()
            message = reader.poll(0.05)
            seen += message is not None and message.error() is None
        waited = a_scored() - when_sent
        outputs = read_committed(
            kafka.bootstrap, [names.output_topic(A), names.output_topic(B)], expect=BACKLOG + B_EVENTS, timeout=120
        )
    finally:
        worker.stop()
        reader.close()
        a_scored.close()  # type: ignore[attr-defined]
    ids = Counter(orjson.loads(value)["event_id"] for _, _, value in outputs)
    assert len(ids) == BACKLOG + B_EVENTS and set(ids.values()) == {1}, worker.log_tail()
    return waited


@pytest.mark.parametrize("fair", [True, False], ids=["fair-shares", "no-fair-shares"])
def test_a_tenants_backlog_does_not_hold_back_another_tenants_events(
    kafka: BrokerHandle, topic_names: TopicNames, predictor: Predictor, store_dir: Path, tmp_path: Path, fair: bool
) -> None:
    waited = _a_scored_while_b_waited(kafka, topic_names, predictor, store_dir, tmp_path, fair)
    if fair:
        print(f"fair shares: B's results visible after {waited:,} more of A's events")
        assert waited <= BOUND, f"B's results came after {waited:,} more of A's events were scored"
    else:  # the scenario is one that starves B without fair shares
        print(f"no fair shares: B's results visible after {waited:,} more of A's events")
        assert waited > BOUND, f"without fair shares B waited only for {waited:,} of A's events"
