"""Producing to and reading from the real broker in tests, and running workers as processes."""

from __future__ import annotations

from muse_stream.bench.harness import WorkerProcess, produce
from muse_stream.clients.reading import read_topics as read_committed

__all__ = ["WorkerProcess", "produce", "read_committed"]
