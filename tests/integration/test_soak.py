"""A short soak: steady load over 3 tenants and 2 workers on a single node while workers are killed,
paused past their timeouts, cut off from the broker, the broker is killed and restarted, and the
config changes; the verifier must find every event exactly once, no config version going back on a
partition, and no worker that exited on its own."""

from __future__ import annotations

import pytest

from muse_stream.bench.faults import FaultKind
from muse_stream.bench.soak import SoakSettings, run_soak

pytestmark = pytest.mark.kafka


def test_a_short_soak_with_faults_finds_every_event_exactly_once() -> None:
    faults = (
        FaultKind.WORKER_KILL,
        FaultKind.WORKER_PAUSE,
        FaultKind.CUT_CONNECTIONS,
        FaultKind.CONFIG_CHANGE,
        FaultKind.BROKER_KILL,
    )
    report = run_soak(
        SoakSettings(
            minutes=1.0,
            faults=faults,
            rate=300,
            nodes=1,
            seed=5,
            mean_gap_s=2.0,
            pause_s=12.0,
            warmup_s=3.0,
            cooldown_s=5.0,
            drain_timeout_s=150.0,
        ),
        say=print,
    )
    table = report.table()
    print(table)
    assert report.verdict.produced > 10_000
    assert report.verdict.ok, table
    assert len(report.injected) >= 4, table  # seed 5 plans all five kinds
    assert not report.worker_exits, table
