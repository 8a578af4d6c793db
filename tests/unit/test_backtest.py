"""The backtest's figures on hand-made live rows whose answers are known, and its report's shape."""

from __future__ import annotations

import math
import re

import numpy as np
import pyarrow as pa
import pytest

from muse_stream.backtest.aggregate import (
    BacktestError,
    BacktestSpec,
    LiveScores,
    backtest,
    recall_at_alert_rate,
)
from muse_stream.backtest.report import format_table, html_report, summary
from muse_stream.bench.metrics import roc_auc
from muse_stream.replay.rows import REPLAY_SCHEMA
from muse_stream.transforms import AlertRateCurve

DAY = 86_400_000
T0 = 1_772_323_200_000  # 2026-03-01T00:00Z


def scores(rows: list[tuple[str, str, int, float | None, int | None]]) -> LiveScores:
    tenant, config, ts, score, label = zip(*rows, strict=True)
    return LiveScores(
        np.array(tenant),
        np.array(config),
        np.array(ts, np.int64),
        np.array([math.nan if s is None else s for s in score]),
        np.array([-1 if v is None else v for v in label], np.int8),
    )


def test_alert_rates_against_the_reference_per_tenant_config_and_day() -> None:
    # bank-a/live: day 1 has 10 events, scores 0.05..0.95 -> 8 of 10 >= 0.2, 5 >= 0.5, 4 >= 0.6, 2 >= 0.8.
    day1 = [("bank-a", "live", T0 + i, 0.05 + 0.1 * i, None) for i in range(10)]
    day2 = [("bank-a", "live", T0 + DAY + i, 0.9, None) for i in range(4)] + [("bank-a", "live", T0 + DAY, None, None)]
    other = [("bank-b", "cand", T0 + i, 0.1, None) for i in range(3)]
    result = backtest(scores(day1 + day2 + other), BacktestSpec())
    keys = [(g.tenant, g.config, g.period) for g in result.periods]
    assert keys == [("bank-a", "live", "2026-03-01"), ("bank-a", "live", "2026-03-02"), ("bank-b", "cand", "2026-03-01")]
    first = result.periods[0]
    curve = AlertRateCurve.default()
    assert [e.threshold for e in first.edges] == list(curve.edges)
    assert [e.alert_rate for e in first.edges] == pytest.approx([0.8, 0.5, 0.4, 0.2])
    assert first.edges[1].target == pytest.approx(0.35)
    assert first.edges[1].deviation == pytest.approx((0.5 - 0.35) / 0.35)
    second = result.periods[1]
    assert (second.events, second.scored, second.dead_letters) == (5, 4, 1)
    assert [e.alert_rate for e in second.edges] == [1.0] * 4
    total = result.totals[0]
    assert (total.tenant, total.config, total.period, total.events, total.scored) == ("bank-a", "live", "all", 15, 14)
    assert total.edges[3].alert_rate == pytest.approx(6 / 14)
    assert sum(total.histogram) == 14
    assert result.totals[1].edges[0].alert_rate == 0.0
    assert not result.labelled


def test_hourly_periods_and_tenant_thresholds() -> None:
    rows = [("t", "live", T0 + h * 3_600_000, 0.7, None) for h in (0, 0, 5)]
    result = backtest(scores(rows), BacktestSpec(period="hour", thresholds=(0.65, 0.75)))
    assert [g.period for g in result.periods] == ["2026-03-01T00:00Z", "2026-03-01T05:00Z"]
    assert [(f.threshold, f.alert_rate) for f in result.totals[0].thresholds] == [(0.65, 1.0), (0.75, 0.0)]
    assert result.totals[0].thresholds[0].target == pytest.approx(float(AlertRateCurve.default().alert_rate_at(0.65)))


def test_label_metrics_use_labelled_scored_events_only() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(400) < 0.2).astype(int)
    s = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0.001, 0.999)
    rows = [("t", "live", T0, float(v), int(y)) for v, y in zip(s, labels, strict=True)]
    rows += [("t", "live", T0, 0.99, None)] * 50 + [("t", "live", T0, None, 1)] * 5  # unlabelled; dead-lettered
    result = backtest(scores(rows), BacktestSpec(thresholds=(0.5,), alert_rates=(0.05, 0.2)))
    total = result.totals[0]
    assert (total.labelled, total.positives) == (400, int(labels.sum()))
    assert total.auc == pytest.approx(roc_auc(s, labels))
    [at] = total.thresholds
    alerts = s >= 0.5
    assert at.precision == pytest.approx((alerts & (labels == 1)).sum() / alerts.sum())
    assert at.recall == pytest.approx((alerts & (labels == 1)).sum() / labels.sum())
    top = np.sort(s)[::-1][:20]  # 5% of 400
    assert total.recall_at_alert_rate["0.05"] == pytest.approx((s[labels == 1] >= top[-1]).sum() / labels.sum())
    assert total.recall_curve[-1] == (1.0, 1.0)
    assert all(a[1] <= b[1] for a, b in zip(total.recall_curve, total.recall_curve[1:]))
    assert result.labelled


def test_recall_at_alert_rate_counts_ties_at_the_cut_and_needs_a_positive() -> None:
    assert recall_at_alert_rate(np.array([0.9, 0.5, 0.5, 0.1]), np.array([0, 0, 1, 0]), 0.5) == 1.0
    assert recall_at_alert_rate(np.array([0.9, 0.1]), np.array([0, 0]), 0.5) is None


def test_from_table_keeps_live_rows_with_nulls_as_nan_and_minus_one() -> None:
    table = pa.table(
        {
            "tenant": ["a", "a", "a"],
            "config": ["live"] * 3,
            "role": ["live", "shadow", "live"],
            "event_timestamp": pa.array([T0, T0, T0], pa.timestamp("ms", tz="UTC")),
            "score": [0.3, 0.9, None],
            "label": pa.array([1, 1, None], pa.int8()),
        }
    )
    live = LiveScores.from_table(table)
    assert live.score.tolist()[0] == 0.3 and math.isnan(live.score[1])
    assert live.label.tolist() == [1, -1]
    assert live.timestamp_ms.tolist() == [T0, T0]
    assert REPLAY_SCHEMA.field("label").type == pa.int8()


def test_spec_rejects_thresholds_outside_zero_one() -> None:
    with pytest.raises(BacktestError, match="strictly between 0 and 1"):
        BacktestSpec(thresholds=(0.5, 1.5))


def test_reports_table_json_and_self_contained_html_with_one_plot_per_tenant_and_config() -> None:
    rows = [
        (t, c, T0 + d * DAY, 0.1 + 0.08 * i, i % 3 == 0)
        for t in ("a", "b")
        for c in ("live", "v1")
        for d in range(3)
        for i in range(10)
    ]
    result = backtest(scores([(t, c, ts, s, int(y)) for t, c, ts, s, y in rows]), BacktestSpec(thresholds=(0.5,)))
    table = format_table(result)
    assert "tenant" in table and "AUC" in table and "2026-03-03" in table and "P/R@0.5" in table
    data = summary(result, "replay/")
    assert len(data["periods"]) == 12 and len(data["totals"]) == 4 and data["thresholds"] == [0.5]
    page = html_report(result, "replay/")
    assert not re.search(r"""(src|href)\s*=\s*['"]?https?://""", page)
    plots = re.findall(r"data-plot='alert-rate' data-tenant='(\w+)' data-config='(\w+)'", page)
    assert sorted(plots) == [("a", "live"), ("a", "v1"), ("b", "live"), ("b", "v1")]
    assert page.count("src='data:image/png;base64,") == 4 + 2 + 2  # + a histogram and a recall curve per tenant


def test_the_report_plots_only_the_tenants_that_deviate_most_when_asked() -> None:
    # Tenant "far" alerts on everything at every edge; "near" on 70%/35%/10%/5%-ish shares.
    near = [("near", "live", T0, 0.1 + 0.9 * i / 100, 0) for i in range(100)]
    far = [("far", "live", T0, 0.99, 0) for _ in range(100)]
    result = backtest(scores(near + far), BacktestSpec())
    page = html_report(result, "r/", plotted_tenants=1)
    assert re.findall(r"data-plot='alert-rate' data-tenant='(\w+)'", page) == ["far"]
    assert "<h2>near</h2>" in page and "Plots for the 1 of 2 tenants" in page
    assert len(re.findall(r"data-plot='alert-rate'", html_report(result, "r/", plotted_tenants=None))) == 2
