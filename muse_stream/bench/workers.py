"""Worker processes under test: started, SIGKILLed like a crash or stopped, timed, profiled."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from muse_stream.bench.profiles import Profiler
from muse_stream.bench.progress import Progress, rss_kib, wait_for
from muse_stream.errors import MuseError


class WorkerProcess:
    """`muse worker` (or another worker entry point) in its own process, so it can be SIGKILLed like a crash."""

    def __init__(
        self,
        bootstrap: str,
        namespace: str,
        worker_id: str,
        log_dir: Path,
        *extra: str,
        entry: Sequence[str] = ("muse_stream.cli", "worker"),
        python: str = sys.executable,
    ) -> None:
        self.args = [python, "-m", *entry, "--namespace", namespace, "--worker-id", worker_id, *extra]
        self.env = {**os.environ, "MUSE_BOOTSTRAP": bootstrap}
        self.log_path = log_dir / f"worker-{worker_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log_file.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def time_workers(
    processes: Sequence[WorkerProcess],
    count: Callable[[], int],
    total: int,
    *,
    timeout: float,
    interval: float = 0.02,
    profile: Path | None = None,
    started: Callable[[], bool] | None = None,
) -> Progress:
    """Start the processes, poll ``count`` until ``total``, stop them. The progress's peak RSS is the
    highest VmHWM among them; ``profile`` samples the first with py-spy; ``started`` as in wait_for."""
    for process in processes:
        process.start()
    profiler = Profiler(processes[0].pid, profile) if profile else None
    try:
        progress = wait_for(
            count,
            total,
            timeout=timeout,
            pid=processes[0].pid,
            alive=lambda: all(p.alive() for p in processes),
            interval=interval,
            started=started,
        )
        progress.peak_rss_kib = max([progress.peak_rss_kib, *(rss_kib(p.pid).get("VmHWM", 0) for p in processes)])
        if math.isnan(progress.rate):
            before = progress.sampled_before_first
            apart = "" if before is None or progress.first_at is None else f" {progress.first_at - before:.2f} s apart"
            raise MuseError(
                f"all {total:,} events completed between two progress samples{apart} (one every {interval} s "
                "when the machine keeps up), too fast to time: give the benchmark more events (--events)"
            )
        return progress
    except Exception:
        for process in processes:
            print(process.log_tail(30))
        raise
    finally:
        if profiler is not None:
            profiler.stop()
        for process in processes:
            process.stop()
