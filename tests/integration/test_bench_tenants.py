"""`muse bench tenants` end to end on the real broker, short: the warm-up run of the first row counts
in no figure, every row is drained by real worker processes, one JSON line, no topics left behind."""

from __future__ import annotations

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin

pytestmark = pytest.mark.kafka


def test_bench_tenants_warms_up_on_the_first_row_and_reports_every_row(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    args = ["--tenants", "1,4", "--scale-tenants", "2", "--events", "100000", "--trees", "10", "--depth", "3"]
    assert main(["bench", "tenants", *args]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    assert figures["warmup_rounds"] == 1
    # The warm-up drained the first row (1 tenant, one worker) once, before and apart from the rows.
    lines = out.splitlines()
    warmups = [i for i, line in enumerate(lines) if line.startswith("  warm-up: 1 tenant(s), 1 worker(s): ")]
    first_row = next(i for i, line in enumerate(lines) if line.startswith("  1 tenants, 1 worker(s): "))
    assert len(warmups) == 1 and warmups[0] < first_row
    rows = [(run["tenants"], run["workers"]) for run in figures["runs"]]
    assert rows == [(1, 1), (4, 1), (2, 1), (2, 2)]  # the warm-up is not a row
    assert all(run["events_per_s"] > 0 and len(run["repeats_events_per_s"]) == 1 for run in figures["runs"])
    assert figures["throughput_ratio_largest_to_one"] == pytest.approx(
        figures["runs"][1]["events_per_s"] / figures["runs"][0]["events_per_s"], abs=0.002
    )
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # every namespace is deleted
