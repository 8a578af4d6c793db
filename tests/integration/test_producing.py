"""The batched produce path the worker (and demo and benches) use: one ``produce_batch`` per topic."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from confluent_kafka import KafkaException, Producer

from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.producing import produce_grouped
from muse_stream.clients.reading import read_topics
from muse_stream.clients.settings import producer_config, transactional_producer_config
from muse_stream.pipeline.scoring import OutgoingRecord
from muse_stream.topics import TopicNames

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b", "bank-c")


def _records(names: TopicNames, per_tenant: int) -> list[OutgoingRecord]:
    """Records of three tenants interleaved, as a batch of mixed tenants comes out of the scorer."""
    return [
        OutgoingRecord(names.output_topic(tenant), f"k{i}".encode(), f"{tenant}-{i}".encode())
        for i in range(per_tenant)
        for tenant in TENANTS
    ]


def test_every_record_reaches_its_topic_once_in_one_transaction(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames
) -> None:
    admin.ensure([spec for tenant in TENANTS for spec in topic_names.tenant_topic_specs(tenant)])
    records = _records(topic_names, 400)
    producer = Producer(transactional_producer_config(kafka.bootstrap, f"test-{uuid.uuid4()}"))
    producer.init_transactions()
    producer.begin_transaction()
    produce_grouped(producer, records)
    producer.commit_transaction()

    seen = read_topics(kafka.bootstrap, [topic_names.output_topic(t) for t in TENANTS], expect=len(records))
    assert Counter((topic, key, value) for topic, key, value in seen) == Counter(records)
    for tenant in TENANTS:  # within a topic, records keep the order they were given in
        values = [value for topic, _, value in seen if topic == topic_names.output_topic(tenant)]
        assert values == [f"{tenant}-{i}".encode() for i in range(400)]


def test_records_refused_by_a_full_local_queue_are_queued_again(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames
) -> None:
    admin.ensure([spec for tenant in TENANTS for spec in topic_names.tenant_topic_specs(tenant)])
    records = _records(topic_names, 300)
    # A queue of 25 records cannot take a topic's 300 at once: most are refused and must be retried.
    producer = Producer(producer_config(kafka.bootstrap, **{"queue.buffering.max.messages": 25}))
    produce_grouped(producer, records)
    assert producer.flush(30) == 0

    seen = read_topics(kafka.bootstrap, [topic_names.output_topic(t) for t in TENANTS], expect=len(records))
    assert Counter((topic, key, value) for topic, key, value in seen) == Counter(records)


def test_a_record_the_producer_refuses_for_another_reason_raises(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames
) -> None:
    admin.ensure(topic_names.tenant_topic_specs("bank-a"))
    producer = Producer(producer_config(kafka.bootstrap, **{"message.max.bytes": 10_000}))
    topic = topic_names.output_topic("bank-a")
    with pytest.raises(KafkaException) as raised:
        produce_grouped(producer, [OutgoingRecord(topic, b"k", b"small"), OutgoingRecord(topic, b"k", b"x" * 20_000)])
    assert raised.value.args[0].name() == "MSG_SIZE_TOO_LARGE"
