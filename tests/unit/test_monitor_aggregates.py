"""The monitor's pure aggregation: counts, alert rates, histogram, versions, merge, parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muse_stream.events import ScoreResult, Timings
from muse_stream.monitor import aggregates
from muse_stream.transforms import AlertRateCurve

EDGES = AlertRateCurve.default().edges


def test_thresholds_are_the_reference_curve_edges() -> None:
    assert aggregates.default_thresholds() == EDGES
    targets = aggregates.reference_targets()
    assert list(targets) == [aggregates.threshold_key(e) for e in EDGES]
    assert list(targets.values()) == list(AlertRateCurve.default().rates)


def test_counts_rates_histogram_and_versions() -> None:
    scores = [(0.1, "v1"), (0.2, "v1"), (0.55, "v2"), (0.6, "v2"), (0.9, "v2"), (1.0, "v3")]
    stats = aggregates.add_scores(None, scores, thresholds=EDGES, bins=10)
    assert stats["count"] == 6
    assert stats["above"] == [5, 4, 3, 2]  # >= 0.2, 0.5, 0.6, 0.8: a score on the edge counts
    assert stats["hist"] == [0, 1, 1, 0, 0, 1, 1, 0, 0, 2]  # 1.0 falls in the last bin
    assert stats["versions"] == {"v1": 2, "v2": 3, "v3": 1}
    assert aggregates.alert_rates(stats) == pytest.approx({"0.2": 5 / 6, "0.5": 4 / 6, "0.6": 3 / 6, "0.8": 2 / 6})


def test_add_scores_does_not_mutate_its_input() -> None:
    first = aggregates.add_scores({}, [(0.5, "v1")], thresholds=EDGES)
    second = aggregates.add_scores(first, [(0.9, "v1")], thresholds=EDGES, invalid=2)
    assert first["count"] == 1 and first["versions"] == {"v1": 1} and first["invalid"] == 0
    assert second["count"] == 2 and second["versions"] == {"v1": 2} and second["invalid"] == 2


def test_empty_window_has_no_rates_but_shows_targets() -> None:
    summary = aggregates.summary({}, aggregates.reference_targets())
    assert summary["count"] == 0
    assert summary["alert_rates"] == {"0.2": None, "0.5": None, "0.6": None, "0.8": None}
    assert summary["drift"] == {"0.2": None, "0.5": None, "0.6": None, "0.8": None}
    assert summary["target_alert_rates"]["0.8"] == 0.05


def test_summary_drift_is_observed_minus_target() -> None:
    stats = aggregates.add_scores(None, [(0.9, "v1")] * 1 + [(0.1, "v1")] * 9, thresholds=EDGES)
    drift = aggregates.summary(stats, aggregates.reference_targets())["drift"]
    assert drift["0.8"] == pytest.approx(0.1 - 0.05)
    assert drift["0.2"] == pytest.approx(0.1 - 0.70)


def test_rejects_out_of_range_scores_and_mismatched_thresholds() -> None:
    with pytest.raises(ValueError, match="outside"):
        aggregates.add_scores(None, [(1.5, "v1")], thresholds=EDGES)
    stats = aggregates.add_scores(None, [(0.5, "v1")], thresholds=EDGES)
    with pytest.raises(ValueError, match="thresholds"):
        aggregates.add_scores(stats, [(0.5, "v1")], thresholds=(0.5,))
    with pytest.raises(ValueError, match="bin"):
        aggregates.empty(EDGES, bins=0)


scores_st = st.lists(st.tuples(st.floats(0.0, 1.0), st.sampled_from(["v1", "v2"])), max_size=50)


@given(scores_st, scores_st)
def test_merge_of_two_batches_equals_one_batch(a: list[tuple[float, str]], b: list[tuple[float, str]]) -> None:
    together = aggregates.add_scores(None, a + b, thresholds=EDGES)
    merged = aggregates.merge(aggregates.add_scores(None, a, thresholds=EDGES), aggregates.add_scores(None, b, thresholds=EDGES))
    assert merged == together
    assert sum(together["hist"]) == together["count"] == len(a) + len(b)
    assert aggregates.merge({}, together) == together


def _raw(tenant: str, score: float = 0.4) -> bytes:
    return (
        ScoreResult(
            event_id="e1",
            tenant=tenant,
            intent="card-fraud",
            score=score,
            predictor_id="p",
            predictor_name="card-fraud",
            predictor_version="v7",
            config_version=3,
            timings=Timings(event_timestamp_ms=1, scored_at_ms=2, batch_size=1),
        )
        .model_dump_json()
        .encode()
    )


def test_score_of_reads_valid_results_of_the_topics_tenant_only() -> None:
    assert aggregates.score_of(_raw("bank-a"), "bank-a") == (0.4, "v7")
    assert aggregates.score_of(_raw("bank-a"), "bank-b") is None  # a payload cannot claim another tenant
    assert aggregates.score_of(b"not json", "bank-a") is None
    assert aggregates.score_of(b'{"score": 0.3}', "bank-a") is None
    assert aggregates.score_of(None, "bank-a") is None
    assert aggregates.score_of(_raw("bank-a").replace(b'"score":0.4', b'"score":1.4'), "bank-a") is None
