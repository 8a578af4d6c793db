"""`muse bench latency` end to end on the real broker, short: the muse rows and the pass-through
worker's floor rows, with every event timed, one JSON line, and no topics left behind."""

from __future__ import annotations

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin

pytestmark = pytest.mark.kafka


def test_bench_latency_times_muse_and_the_pass_through_floor_at_the_same_loads(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    args = ["--rates", "300", "--commit-intervals", "50", "--seconds", "2", "--trees", "30", "--depth", "4", "--skip-quix"]
    assert main(["bench", "latency", *args]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    rows = {(r["app"], r["offered"]): r for r in figures["results"]}
    assert set(rows) == {("muse", "300/s"), ("muse", "saturation"), ("pass-through", "300/s")}
    for row in rows.values():
        # measure_load waits for every event's result: each one was timed, in order of magnitude sense
        assert row["events"] >= 500
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"] < 60_000
    floor, muse = rows[("pass-through", "300/s")], rows[("muse", "300/s")]
    # The pass-through results carry no timings (no scoring leg), the muse ones do.
    assert floor["to_scoring_p50_ms"] is None and muse["to_scoring_p50_ms"] is not None
    assert "pass-through" in out
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # every namespace is deleted
