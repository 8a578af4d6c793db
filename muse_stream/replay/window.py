"""The part of the input a replay reads: a time window (``--from/--to``, resolved per partition with
``offsets_for_times``) or an offset window, as half-open ``[start, stop)`` offset ranges. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from muse_stream.errors import MuseError


class WindowError(MuseError):
    """A window that cannot be read as asked."""


def parse_time(text: str, option: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(f"{option} {text!r} is not an ISO 8601 time; write e.g. 2026-03-01T12:00:00Z or 2026-03-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Window:
    """Times in ms (``stop_ms`` exclusive) or offsets (``to_offset`` exclusive), never both; all None: everything."""

    from_ms: int | None = None
    to_ms: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def __post_init__(self) -> None:
        by_time = self.from_ms is not None or self.to_ms is not None
        by_offset = self.from_offset is not None or self.to_offset is not None
        if by_time and by_offset:
            raise WindowError("give a window by time (--from/--to) or by offsets (--from-offset/--to-offset), not both")
        if self.from_ms is not None and self.to_ms is not None and self.to_ms <= self.from_ms:
            raise WindowError("--to must be later than --from")
        for name, value in (("--from-offset", self.from_offset), ("--to-offset", self.to_offset)):
            if value is not None and value < 0:
                raise WindowError(f"{name} must be 0 or more, got {value}")
        if self.from_offset is not None and self.to_offset is not None and self.to_offset <= self.from_offset:
            raise WindowError("--to-offset must be greater than --from-offset")

    @property
    def by_time(self) -> bool:
        return self.from_ms is not None or self.to_ms is not None

    def offsets(self, low: int, high: int, start_at_time: int | None = None, stop_at_time: int | None = None) -> tuple[int, int]:
        """``[start, stop)`` within a partition holding offsets ``[low, high)``. For a time window,
        ``start_at_time``/``stop_at_time`` are the offsets ``offsets_for_times`` gave for ``from_ms``
        and ``to_ms`` (-1 or None: no record at or after that time, so the partition's end)."""
        if self.by_time:
            start = low if self.from_ms is None else (high if start_at_time in (None, -1) else start_at_time)
            stop = high if self.to_ms is None or stop_at_time in (None, -1) else stop_at_time
        else:
            start = low if self.from_offset is None else self.from_offset
            stop = high if self.to_offset is None else self.to_offset
        start = min(max(start, low), high)
        return start, max(start, min(stop, high))

    def check_retained(self, topic: str, partition: int, low: int, oldest_ms: int | None) -> None:
        """Raise when the window starts before the oldest record still on a partition whose records
        from offset 0 to ``low`` are gone (retention or deleted records); ``oldest_ms`` is the
        timestamp of the record at ``low`` (None: the partition is empty now). A partition that
        still starts at offset 0 lost nothing, so a window opening before its first record is fine."""
        if low <= 0:
            return
        where = f"{topic} partition {partition}"
        if self.from_offset is not None and self.from_offset < low:
            raise WindowError(
                f"--from-offset {self.from_offset} is before the oldest offset still on {where} ({low}): "
                f"older records are gone (retention); replay from --from-offset {low} or later"
            )
        if self.from_ms is not None and (oldest_ms is None or oldest_ms > self.from_ms):
            oldest = (
                "nothing (every record is gone)"
                if oldest_ms is None
                else f"from {datetime.fromtimestamp(oldest_ms / 1000, UTC).isoformat()} (offset {low})"
            )
            advice = (
                ""
                if oldest_ms is None
                else f"; replay from --from {datetime.fromtimestamp(oldest_ms / 1000, UTC).isoformat()} or later"
            )
            raise WindowError(
                f"the window starts at {datetime.fromtimestamp(self.from_ms / 1000, UTC).isoformat()}, before "
                f"the oldest record still on {where}, which is {oldest}: older records are gone "
                f"(retention){advice}"
            )

    def describe(self) -> str:
        if self.by_time:
            show = lambda ms: "start" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()  # noqa: E731
            return f"from {show(self.from_ms)} to {'end' if self.to_ms is None else show(self.to_ms)}"
        if self.from_offset is None and self.to_offset is None:
            return "everything"
        return f"offsets {self.from_offset or 0} to {'end' if self.to_offset is None else self.to_offset}"


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` -> (K, N), 1 <= K <= N."""
    k, slash, n = text.partition("/")
    if not slash or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise WindowError(f"--shard {text!r} is not K/N with 1 <= K <= N (e.g. 2/4: the second of four replays)")
    return int(k), int(n)


def shard_of(keys: list[tuple[str, int]], shard: tuple[int, int]) -> list[tuple[str, int]]:
    """Shard K of N takes every Nth input partition (whole partitions, in topic and partition order),
    so N replays with the same arguments read every event exactly once between them."""
    k, n = shard
    return [key for index, key in enumerate(sorted(keys)) if index % n == k - 1]
