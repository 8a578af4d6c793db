"""Reading a transactional group's committed offsets while its transactions keep offsets pending:
the benchmarks' progress counter and the worker's lag metric must get an answer at once, not
after librdkafka has waited for a moment with nothing pending (``require_stable``, KIP-447)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from muse_stream.bench.progress import committed_counter
from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.settings import consumer_config, transactional_producer_config
from muse_stream.topics import TopicSpec

pytestmark = pytest.mark.kafka


def test_committed_offsets_are_read_at_once_while_transactions_keep_them_pending(kafka: BrokerHandle) -> None:
    topic, group = f"t{uuid.uuid4().hex[:12]}.in", f"g{uuid.uuid4().hex[:12]}"
    TopicAdmin(kafka.bootstrap).ensure([TopicSpec(topic, 1, {})])
    producer = Producer(transactional_producer_config(kafka.bootstrap, f"x{uuid.uuid4().hex[:12]}"))
    producer.init_transactions()
    member = Consumer(consumer_config(kafka.bootstrap, group))
    metadata = member.consumer_group_metadata()
    member.close()
    stop, committed = threading.Event(), [0]

    def commit_offsets_slowly() -> None:
        # Transactions like a busy worker's: offsets sent early, the commit 300 ms later.
        while not stop.is_set():
            producer.begin_transaction()
            producer.send_offsets_to_transaction([TopicPartition(topic, 0, committed[0] + 100)], metadata)
            time.sleep(0.3)
            producer.commit_transaction()
            committed[0] += 100

    committer = threading.Thread(target=commit_offsets_slowly, daemon=True)
    committer.start()
    count = committed_counter(kafka.bootstrap, group, [(topic, 0)])
    try:
        while committed[0] < 200:
            time.sleep(0.05)
        slowest, seen = 0.0, []
        for _ in range(20):
            started = time.monotonic()
            seen.append(count())
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
    finally:
        stop.set()
        committer.join(10)
        count.close()  # type: ignore[attr-defined]
    assert slowest < 0.25, f"a read of the committed offsets took {slowest:.2f} s"
    assert seen == sorted(seen) and seen[0] >= 200 and seen[-1] > seen[0]  # committed offsets, rising
