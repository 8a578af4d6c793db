"""The replay that ``muse bench replay`` times, as the target of a spawned process: a module that
imports only the replay, so the process's peak RSS is the replay's and not the benchmark's."""

from __future__ import annotations

import os
import resource
import time
from multiprocessing.connection import Connection

from muse_stream.bench.progress import rss_kib
from muse_stream.replay.configs import ConfigChoice
from muse_stream.replay.run import replay
from muse_stream.replay.window import Window
from muse_stream.topics import TopicNames


def replay_live(bootstrap: str, namespace: str, tenant: str, out: str, batch_size: int, reply: Connection) -> None:
    """One replay of ``tenant`` with the live config; sends (seconds of the whole call, seconds
    reading/scoring/writing, events, peak RSS KiB) back on ``reply``."""
    started = time.perf_counter()
    summary = replay(bootstrap, TopicNames(namespace), [tenant], [ConfigChoice("live")], Window(), out, batch_size=batch_size)
    total = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a spawned child reported
    # the benchmark parent's peak (it holds the backlog's payloads: 736 MiB for 1,000,000 events).
    peak_kib = rss_kib(os.getpid()).get("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reply.send((total, summary.seconds, sum(summary.events.values()), peak_kib))
