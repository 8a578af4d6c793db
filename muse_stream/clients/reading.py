"""Reading topics: a whole partition to its end as of now (config, history and models logs), and
every record of some topics until they go quiet (the demo, the tests, a curious operator)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Protocol, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from muse_stream.clients.settings import consumer_config, log_reader_config
from muse_stream.errors import MuseError

READ_TIMEOUT_S = 30.0
LEADER_WAIT_S = 10.0


class Record(Protocol):
    """A consumed message that is a record, not an error event. confluent-kafka types topic(),
    partition() and offset() as optional because an error event may lack them; a message whose
    error() is None has all three, and this type says so once instead of at every use."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def timestamp(self) -> tuple[int, int]: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


def good(message: Message) -> Record:
    """``message`` as a :class:`Record`; call it only once ``message.error()`` is None."""
    return cast(Record, message)


def good_batch(messages: list[Message]) -> list[Record]:
    """A batch as records, without a per-message cost: for batches whose error events were taken out."""
    return cast(list[Record], messages)


def read_topics(
    bootstrap: str,
    topics: list[str],
    *,
    expect: int,
    timeout: float = 60.0,
    settle: float = 1.0,
    isolation: str = "read_committed",
) -> list[tuple[str, bytes | None, bytes | None]]:
    """(topic, key, value) of every record, read until at least `expect` arrived and then `settle`
    seconds passed with nothing new (so records beyond `expect`, e.g. duplicates, are seen too),
    or until `timeout`. Uses a fresh group id, so it always starts at the beginning."""
    consumer = Consumer(consumer_config(bootstrap, f"muse-reader-{uuid.uuid4()}", **{"isolation.level": isolation}))
    consumer.subscribe(topics)
    records: list[tuple[str, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.2)
            for message in batch:
                if message.error() is None:
                    record = good(message)
                    records.append((record.topic(), record.key(), record.value()))
            if batch:
                last = time.monotonic()
            elif len(records) >= expect and time.monotonic() - last >= settle:
                break
    finally:
        consumer.close()
    return records


def reader_from_start(bootstrap: str, topic: str, **overrides: object) -> Consumer:
    """A read_committed reader assigned to partition 0 of ``topic`` at its first offset.

    The first offset is looked up explicitly: assigning OFFSET_BEGINNING makes librdkafka wait
    for its offset-query timer (about half a second) before the first fetch.
    """
    consumer = Consumer(log_reader_config(bootstrap, **overrides))
    started = time.monotonic()
    while True:
        try:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=LEADER_WAIT_S)
            break
        except KafkaException as error:
            # Just after creation a topic may have no leader yet: wait a little for one. A timeout may
            # be a leader that just died, whose successor the cluster elects within its broker
            # session timeout (about 10 s): wait for that longer.
            patience = READ_TIMEOUT_S if error.args[0].code() == KafkaError._TIMED_OUT else LEADER_WAIT_S
            if time.monotonic() - started > patience:
                consumer.close()
                raise MuseError(
                    f"cannot read topic {topic} on {bootstrap}: {error.args[0].str()}; check that it exists "
                    "(`muse config apply` and `muse tenants add` create the internal topics)"
                ) from error
            time.sleep(0.05)
    consumer.assign([TopicPartition(topic, 0, low if low >= 0 else OFFSET_BEGINNING)])
    return consumer


def read_to_end(bootstrap: str, topic: str, *, timeout: float = READ_TIMEOUT_S, **overrides: object) -> Iterator[Record]:
    """Every committed record of partition 0 of ``topic``, from its start to its end as of now."""
    consumer = reader_from_start(bootstrap, topic, **overrides)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise MuseError(
                    f"reading topic {topic} on {bootstrap} did not reach its end within {timeout:.0f} s; "
                    "check the broker with `muse broker status`, and that no transaction is stuck open"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise MuseError(f"cannot read topic {topic} on {bootstrap}: {error.str()}")
                continue
            yield good(message)
    finally:
        consumer.close()
