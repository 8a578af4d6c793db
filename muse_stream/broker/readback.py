"""Read topics back from the start: what the demo, the tests and a curious operator need to see."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer

from muse_stream.broker.clients import consumer_config


def read_topics(bootstrap: str, topics: list[str], *, expect: int, timeout: float = 60.0, settle: float = 1.0,
                isolation: str = "read_committed") -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of every record, read until at least `expect` arrived and then `settle`
    seconds passed with nothing new (so records beyond `expect`, e.g. duplicates, are seen too),
    or until `timeout`. Uses a fresh group id, so it always starts at the beginning."""
    consumer = Consumer(consumer_config(bootstrap, f"muse-reader-{uuid.uuid4()}", **{"isolation.level": isolation}))
    consumer.subscribe(topics)
    records: list[tuple[str, bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.2)
            for message in batch:
                if message.error() is None:
                    records.append((message.topic(), message.key(), message.value()))
            if batch:
                last = time.monotonic()
            elif len(records) >= expect and time.monotonic() - last >= settle:
                break
    finally:
        consumer.close()
    return records
