"""The broker's exactly-once machinery works on this one-node setup: aborted records stay hidden."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from muse_stream.broker import BrokerHandle
from muse_stream.broker.clients import consumer_config, transactional_producer_config
from muse_stream.topics import TopicAdmin, TopicNames

pytestmark = pytest.mark.kafka


def _read_all(bootstrap: str, topic: str, isolation: str, expected_at_least: int, timeout: float = 30.0) -> list[bytes]:
    """Read a topic from the start until it goes quiet after reaching `expected_at_least` records."""
    consumer = Consumer(consumer_config(bootstrap, f"reader-{uuid.uuid4()}", **{"isolation.level": isolation}))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                if len(values) >= expected_at_least and time.monotonic() - quiet_since > 1.5:
                    break
                continue
            if message.error():
                continue
            values.append(message.value())
            quiet_since = time.monotonic()
    finally:
        consumer.close()
    return values


def test_read_committed_sees_committed_records_once_and_never_aborted_ones(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames
) -> None:
    admin.ensure(topic_names.tenant_topic_specs("bank-a", partitions=2))
    topic = topic_names.output_topic("bank-a")
    producer = Producer(transactional_producer_config(kafka.bootstrap, f"test-{uuid.uuid4()}"))
    producer.init_transactions()

    committed: list[bytes] = []
    aborted: list[bytes] = []
    for batch in range(6):
        producer.begin_transaction()
        values = [f"batch{batch}-record{i}".encode() for i in range(50)]
        for value in values:
            producer.produce(topic, key=value[:6], value=value)
        if batch % 2:
            producer.flush()  # on the log before the abort, so the abort marker is what hides them
            producer.abort_transaction()
            aborted += values
        else:
            producer.commit_transaction()
            committed += values

    read_committed = _read_all(kafka.bootstrap, topic, "read_committed", len(committed))
    assert sorted(read_committed) == sorted(committed)  # each committed record exactly once
    assert not set(read_committed) & set(aborted)

    # Proof that the records were on the log: an uncommitted reader does see the aborted ones.
    read_uncommitted = _read_all(kafka.bootstrap, topic, "read_uncommitted", len(committed) + len(aborted))
    assert set(aborted) <= set(read_uncommitted)
