"""Producing to and reading from the real broker in tests, and running workers as processes."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer

from muse_stream.bench.harness import WorkerProcess, produce
from muse_stream.broker.clients import consumer_config

__all__ = ["WorkerProcess", "produce", "read_committed"]


def read_committed(bootstrap: str, topics: list[str], *, expect: int, timeout: float = 60.0,
                   settle: float = 1.0) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of committed records, read until `expect` arrived and `settle` s passed quietly."""
    consumer = Consumer(consumer_config(bootstrap, f"test-reader-{uuid.uuid4()}"))
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
