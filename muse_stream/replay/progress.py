"""Progress of a long read: a bar with rate and ETA redrawn in place on a terminal, a plain line
every few seconds otherwise (logs and CI keep readable lines, not carriage returns).

Written here rather than taken from tqdm: tqdm draws bars only, with carriage returns, wherever it
writes; the plain lines for non-terminals would have to be written anyway."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class Progress:
    """``update(n)`` after each batch; ``close()`` at the end. ``total`` is an upper bound (offsets)."""

    def __init__(
        self, total: int, *, label: str = "replay", stream: TextIO | None = None, interval_s: float | None = None
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 5.0)
        self.done = 0
        self.started = time.monotonic()
        self._shown = self.started if not self.tty else 0.0  # plain lines: the first after one interval

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        eta = _duration((self.total - self.done) / rate) if rate > 0 and self.done < self.total else "0:00"
        text = f"{self.done:,}/{self.total:,} events {fraction:4.0%}, {rate:,.0f} events/s, ETA {eta}"
        if self.tty:
            filled = int(fraction * BAR_WIDTH)
            return f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}"
        return f"{self.label}: {text}"

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= self.interval_s:
            self._shown = now
            self._show()

    def _show(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.total = self.done  # offsets held control records too: end at 100%
        self._show()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
