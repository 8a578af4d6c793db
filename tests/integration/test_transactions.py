"""The broker's exactly-once machinery works on this one-node setup: aborted records stay hidden."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import read_topics
from muse_stream.clients.settings import transactional_producer_config
from muse_stream.topics import TopicNames

pytestmark = pytest.mark.kafka


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

    read_committed = [v for _, _, v in read_topics(kafka.bootstrap, [topic], expect=len(committed), timeout=30, settle=1.5)]
    assert sorted(read_committed) == sorted(committed)  # each committed record exactly once
    assert not set(read_committed) & set(aborted)

    # Proof that the records were on the log: an uncommitted reader does see the aborted ones.
    read_uncommitted = [
        v
        for _, _, v in read_topics(
            kafka.bootstrap, [topic], expect=len(committed) + len(aborted), timeout=30, settle=1.5, isolation="read_uncommitted"
        )
    ]
    assert set(aborted) <= set(read_uncommitted)
