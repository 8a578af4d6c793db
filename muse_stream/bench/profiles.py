"""Where a worker spends its time: py-spy samples of a running process, summed per function."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


class Profiler:
    """py-spy sampling a running process (``pip install py-spy``) into a raw collapsed-stack file."""

    def __init__(self, pid: int, output: Path, *, rate: int = 200) -> None:
        executable = Path(sys.executable).with_name("py-spy")
        self.output = output
        self.process = subprocess.Popen(
            [
                str(executable if executable.exists() else "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--output",
                str(output),
                "--rate",
                str(rate),
                "--nonblocking",
                "--idle",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(30)


def profile_summary(
    path: Path, *, root: str = "Worker.run (muse_stream/pipeline/worker.py", top: int = 24
) -> list[tuple[str, float, float]]:
    """(function, inclusive share, self share) of the samples under ``root``, largest inclusive first."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        starts = [i for i, frame in enumerate(frames) if frame.startswith(root)]
        if not starts:
            continue
        frames = frames[starts[0] :]
        count = int(count_text)
        total += count
        names = [frame.split(":")[0].replace(" (", " ").rstrip(")") for frame in frames]
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + count
        own[names[-1]] = own.get(names[-1], 0) + count
    ranked = sorted(inclusive, key=inclusive.__getitem__, reverse=True)
    return [(name, inclusive[name] / total, own.get(name, 0) / total) for name in ranked[:top]] if total else []
