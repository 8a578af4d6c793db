"""The tenants benchmark's pure parts: how repeats become one row."""

from __future__ import annotations

import pytest

from muse_stream.bench.tenants import TenantRun, median_run, ratio_to
from muse_stream.cli import main


def _run(events_per_s: float, peak: float, seconds: float) -> TenantRun:
    return TenantRun(
        tenants=500,
        workers=1,
        topics=1500,
        create_s=2.0,
        events=200_000,
        events_per_s=events_per_s,
        seconds=seconds,
        peak_rss_mib=peak,
    )


def test_a_row_is_the_median_rate_and_the_highest_peak_of_its_repeats() -> None:
    row = median_run([_run(30_000, 350, 6.7), _run(50_000, 300, 4.0), _run(61_000, 320, 3.3)])
    assert row.events_per_s == 50_000 and row.seconds == 4.0
    assert row.peak_rss_mib == 350  # memory is judged by the worst repeat
    assert row.repeats_events_per_s == [30_000, 50_000, 61_000]
    assert (row.tenants, row.workers, row.topics) == (500, 1, 1500)


def test_the_ratio_to_one_tenant_pairs_runs_of_the_same_round() -> None:
    one = median_run([_run(60_000, 250, 3.3), _run(70_000, 250, 2.9), _run(65_000, 250, 3.1)])
    many = median_run([_run(48_000, 350, 4.2), _run(60_000, 350, 3.3), _run(45_000, 350, 4.4)])
    # rounds: 0.80, 0.857, 0.692 -> median 0.80; the ratio of the medians would say 0.74
    assert ratio_to(many, one) == pytest.approx(0.80)
    assert ratio_to(one, one) == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeat", "0"], "argument --repeat: 0 is not allowed: give 1 or more"),
        (["--tenants", "1,x"], "argument --tenants: 'x' is not a whole number"),
        (["--tenants", "1,-5"], "argument --tenants: -5 is not allowed: give 1 or more"),
    ],
)
def test_bad_counts_are_refused_with_the_option_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "tenants", *argv])
    assert message in capsys.readouterr().err
