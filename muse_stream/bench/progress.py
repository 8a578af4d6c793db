"""Watching a benchmark run: completed-event counters and the rate from first to last completion."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from muse_stream.clients.settings import committed_offsets_reader_config, consumer_config, log_reader_config
from muse_stream.errors import MuseError


def rss_kib(pid: int) -> dict[str, int]:
    """Resident set size now (VmRSS) and at its peak (VmHWM), KiB, from /proc."""
    figures: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0])
    return figures


@dataclass
class Progress:
    """Completed-event counts sampled over time; the rate is taken from first to last completion."""

    total: int
    first_at: float | None = None
    first_count: int = 0
    done_at: float | None = None
    peak_rss_kib: int = 0
    sampled_before_first: float | None = None  # when the sample before first_at was taken

    @property
    def rate(self) -> float:
        if self.first_at is None or self.done_at is None or self.done_at <= self.first_at:
            return float("nan")
        return (self.total - self.first_count) / (self.done_at - self.first_at)

    @property
    def seconds(self) -> float:
        return (self.done_at or float("nan")) - (self.first_at or float("nan"))


def committed_counter(bootstrap: str, group_id: str, partitions: Sequence[tuple[str, int]]) -> Callable[[], int]:
    """Events whose results are committed: the sum of the group's committed offsets (results and
    offsets commit in one transaction, so this is exactly what read_committed readers can see)."""
    consumer = Consumer(committed_offsets_reader_config(bootstrap, group_id))
    tps = [TopicPartition(t, p) for t, p in partitions]

    def count() -> int:
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def high_watermark_counter(bootstrap: str, partitions: Sequence[tuple[str, int]]) -> Callable[[], int]:
    """Records in non-transactional topics: the sum of their high watermarks."""
    consumer = Consumer(consumer_config(bootstrap, f"muse-bench-{uuid.uuid4().hex}", **{"isolation.level": "read_uncommitted"}))

    def count() -> int:
        return sum(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)[1] for t, p in partitions)

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def marker_counter(bootstrap: str, starts: Mapping[tuple[str, int], int], marker: bytes) -> Callable[[], int]:
    """Committed records holding ``marker`` (e.g. a predictor id) from ``starts`` ((topic, partition) ->
    offset) on: each call reads what arrived since the last one, so polling it follows a live topic."""
    consumer = Consumer(log_reader_config(bootstrap))
    consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in starts.items()])
    found = 0

    def count() -> int:
        nonlocal found
        while True:
            batch = consumer.consume(10_000, timeout=0.05)
            found += sum(1 for m in batch if m.error() is None and marker in (m.value() or b""))
            if len(batch) < 10_000:
                return found

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def records_written(bootstrap: str, partitions: Sequence[tuple[str, int]]) -> Callable[[], bool]:
    """Whether any record (committed or not) is in these partitions: a transactional worker's first
    result is written long before a 5 s commit interval commits it."""
    written = high_watermark_counter(bootstrap, partitions)

    def any_written() -> bool:
        return written() > 0

    any_written.close = written.close  # type: ignore[attr-defined]
    return any_written


def wait_for(
    count: Callable[[], int],
    total: int,
    *,
    timeout: float,
    pid: int | None = None,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.02,
    started: Callable[[], bool] | None = None,
) -> Progress:
    """Poll ``count`` until it reaches ``total``; note when the first and the last completion showed.
    With ``started``, the clock starts when it first says so instead (e.g. the first result written,
    for a worker that commits seldom: its first commit would come after most of the work)."""
    progress = Progress(total)
    deadline = time.monotonic() + timeout
    last_rss = 0.0
    try:
        while time.monotonic() < deadline:
            begun = progress.first_at is not None or started is None or started()
            done = count()
            now = time.monotonic()
            if progress.first_at is None:
                first = done > 0 if started is None else begun
                if first:
                    progress.first_at, progress.first_count = now, done
                else:
                    progress.sampled_before_first = now
            if pid is not None and now - last_rss > 0.5:
                try:
                    progress.peak_rss_kib = max(progress.peak_rss_kib, rss_kib(pid).get("VmHWM", 0))
                except OSError:
                    pass
                last_rss = now
            if done >= total:
                progress.done_at = now
                break
            if not alive():
                raise MuseError("the worker under test exited before finishing")
            time.sleep(interval)
        else:
            raise MuseError(f"only {count()} of {total} events completed within {timeout:.0f} s")
    finally:
        for probe in (count, started):
            close = getattr(probe, "close", None)
            if close is not None:
                close()
    if pid is not None:
        try:
            progress.peak_rss_kib = max(progress.peak_rss_kib, rss_kib(pid).get("VmHWM", 0))
        except OSError:
            pass
    return progress
