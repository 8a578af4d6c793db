"""Producing to and reading from the real broker in tests, and running workers as processes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from muse_stream.bench.workers import WorkerProcess
from muse_stream.clients.producing import produce_records
from muse_stream.clients.reading import read_topics as read_committed

__all__ = ["WorkerProcess", "produce", "read_committed"]


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]], **config: Any) -> int:
    """Produce (key, value) pairs to one topic and wait until all are acknowledged."""
    return produce_records(bootstrap, ((topic, key, value) for key, value in records), what=f"records to {topic}", config=config)
