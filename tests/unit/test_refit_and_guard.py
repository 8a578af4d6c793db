"""The pure parts of a model update: refitting a spec's map on traffic, and the guard's judgement."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from muse_stream.cli.options import duration
from muse_stream.errors import MuseError
from muse_stream.monitor.aggregates import add_scores, reference_targets
from muse_stream.monitor.guard import events_to_judge, judge_route
from muse_stream.predictors import PredictorSpec
from muse_stream.predictors.refit import reference_of, refit_spec, refit_version
from muse_stream.transforms import AlertRateCurve, EmpiricalReference, QuantileMap


def test_a_refit_version_counts_refits_after_the_models_version() -> None:
    assert refit_version("2") == "2-fit1"
    assert refit_version("2-fit1") == "2-fit2"
    assert refit_version("2.1-fit9") == "2.1-fit10"
    assert refit_version("fit") == "fit-fit1"


def test_the_reference_is_rebuilt_from_a_curve_and_an_empirical_one_is_refused() -> None:
    rng = np.random.default_rng(1)
    curve = AlertRateCurve.parse("0.3:0.5,0.9:0.02")
    qmap = QuantileMap.fit(rng.beta(1, 8, 2000), curve)
    assert reference_of(qmap.to_dict(), owner="x").describe() == curve.describe()
    empirical = QuantileMap.fit(rng.beta(1, 8, 2000), EmpiricalReference.from_scores(rng.random(2000)))
    with pytest.raises(MuseError, match="live predictor p maps onto a empirical reference .* --curve"):
        reference_of(empirical.to_dict(), owner="live predictor p")


def spec_with(qmap: QuantileMap) -> PredictorSpec:
    return PredictorSpec(
        name="fraud",
        version="2",
        model={"name": "m", "version": "2", "sha256": "a" * 64, "format": "json"},
        feature_names=("f1", "f2"),
        b=0.05,
        quantile_map=qmap.to_dict(),
    )


def test_a_refit_changes_only_the_map_and_the_version_and_reproduces_the_targets() -> None:
    rng = np.random.default_rng(2)
    curve = AlertRateCurve.default()
    old = spec_with(QuantileMap.fit(rng.beta(1, 3, 5000), curve))  # fitted on another model's scores
    live_scores = rng.beta(1, 12, 20_000)
    new, qmap, rates = refit_spec(old, live_scores, curve)
    assert new.version == "2-fit1" and new.id != old.id
    assert new.model_dump(exclude={"version", "quantile_map"}) == old.model_dump(exclude={"version", "quantile_map"})
    assert new.build_quantile_map() == qmap == QuantileMap.fit(live_scores, curve)
    assert [r.edge for r in rates] == list(curve.edges)
    assert all(abs(r.error) <= 0.02 * r.target for r in rates), rates
    assert refit_spec(old, live_scores, curve, version="7")[0].version == "7"


def scores_at(n_01: int, n_03: int, n_055: int, n_07: int, n_09: int) -> list[tuple[float, str]]:
    counts = {0.1: n_01, 0.3: n_03, 0.55: n_055, 0.7: n_07, 0.9: n_09}
    return [(score, "2") for score, n in counts.items() for _ in range(n)]


def test_the_guard_waits_for_enough_results_then_fails_on_drift_at_any_edge() -> None:
    targets = reference_targets()  # 70% >= 0.2, 35% >= 0.5, 10% >= 0.6, 5% >= 0.8
    thresholds = [float(k) for k in targets]
    on_target = add_scores(None, scores_at(300, 350, 250, 50, 50), thresholds=thresholds)
    assert judge_route("bank-a/card-fraud", on_target, targets, tolerance=0.2, min_events=1001).verdict == "pending"
    judged = judge_route("bank-a/card-fraud", on_target, targets, tolerance=0.2, min_events=500)
    assert judged.verdict == "pass" and judged.count == 1000 and not judged.drifted(0.2)
    # Within tolerance (5.5% against 5% at the top edge) passes; 9% there fails, the other edges unchanged.
    assert (
        judge_route(
            "r", add_scores(None, scores_at(300, 350, 250, 45, 55), thresholds=thresholds), targets, tolerance=0.2, min_events=500
        ).verdict
        == "pass"
    )
    drifted = judge_route(
        "bank-a/card-fraud",
        add_scores(None, scores_at(300, 350, 250, 10, 90), thresholds=thresholds),
        targets,
        tolerance=0.2,
        min_events=500,
    )
    assert drifted.verdict == "fail" and [e.threshold for e in drifted.drifted(0.2)] == ["0.8"]
    assert ">=0.8: 0.0900 (target 0.0500, +80%)" in drifted.render() and "fail" in drifted.render()
    assert judge_route("r", {}, targets, min_events=1).verdict == "pending"


def test_durations_take_a_unit_and_refuse_nonsense() -> None:
    assert [duration(t) for t in ("20s", "10m", "2h", "1d", "1.5", "250ms")] == [20, 600, 7200, 86400, 1.5, 0.25]
    for text in ("0s", "ten minutes", "-5m", "5y"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
            duration(text)


def test_events_to_judge_keeps_noise_at_the_rarest_edge_within_the_tolerance() -> None:
    """The default guard count: a 5% edge at 20% tolerance needs 4,275 results; 500 would judge on ~25 alerts."""
    targets = {"0.2": 0.7, "0.5": 0.35, "0.8": 0.05}
    needed = events_to_judge(targets, 0.2)
    assert needed == 4275
    p = 0.05
    relative_sd = ((1 - p) / (needed * p)) ** 0.5
    assert 3 * relative_sd <= 0.2 < 3 * ((1 - p) / ((needed - 1) * p)) ** 0.5
    assert events_to_judge(targets, 0.4) < needed  # a looser tolerance judges sooner
    with pytest.raises(ValueError, match="tolerance"):
        events_to_judge(targets, 0)
