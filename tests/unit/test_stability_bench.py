"""The stability benchmark on a small stream: the structural claims that hold at any size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from muse_stream.bench.stability import (
    PREDICTORS,
    PredictorFigures,
    StabilityConfig,
    _auc_tie_bound,
    run_stability,
)
from muse_stream.synthetic import TrainingParams

SMALL = StabilityConfig(
    seed=3,
    windows=4,
    events_per_window=8_000,
    old=TrainingParams(n_trees=20, max_depth=3, b=0.2),
    new=TrainingParams(n_trees=40, max_depth=4, b=0.05),
)


@pytest.fixture(scope="module")
def figures() -> dict[str, PredictorFigures]:
    return {f.name: f for f in run_stability(SMALL)}


def test_one_row_per_predictor(figures: dict[str, PredictorFigures]) -> None:
    assert tuple(figures) == PREDICTORS
    assert figures["p1"].model == "old" and figures["p2"].model == "new"


def test_transforms_do_not_change_ranking_metrics(figures: dict[str, PredictorFigures]) -> None:
    # Posterior correction alone is strictly increasing: AUC and recall are bit-identical.
    raw = figures["raw"]
    assert raw.auc_mapped == raw.auc_raw and raw.max_abs_auc_change == 0.0
    assert raw.recall_mapped == raw.recall_raw
    for f in figures.values():
        # A quantile map is non-decreasing: it can only move AUC through pairs it newly ties.
        assert f.max_abs_auc_change <= f.auc_tie_bound + 1e-12, f.name
        assert 0.5 < f.auc_raw <= 1.0


def test_posterior_correction_improves_calibration(figures: dict[str, PredictorFigures]) -> None:
    for name in ("p1", "p2"):  # one per model
        assert figures[name].ece_corrected < figures[name].ece_raw


def test_refit_mapping_holds_alert_rates_better_than_none_or_the_old_map(figures: dict[str, PredictorFigures]) -> None:
    for name in ("p2", "custom"):
        assert figures[name].edge_error < figures["raw"].edge_error
        assert figures[name].grid_error < figures["raw"].grid_error
        assert figures[name].edge_error < figures["p1_5"].edge_error


def test_tie_bound_catches_a_transform_that_ties() -> None:
    raw = np.array([0.1, 0.2, 0.3, 0.4])
    labels = np.array([0, 1, 0, 1])
    assert _auc_tie_bound(raw, raw * 2, labels) == 0.0
    # Tying the middle two (a positive and a negative) ties 1 of 4 pairs.
    assert _auc_tie_bound(raw, np.array([0.1, 0.25, 0.25, 0.4]), labels) == pytest.approx(0.125)


def test_cli_prints_json_last(capsys: pytest.CaptureFixture[str]) -> None:
    from muse_stream.cli import main

    assert main(["bench", "stability", "--windows", "3", "--events-per-window", "3000", "--drift", "0"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert report["benchmark"] == "stability"
    assert [p["name"] for p in report["scenarios"]["stationary"]["predictors"]] == list(PREDICTORS)
    assert any(line.startswith("p2 ") for line in out)


def test_too_few_windows_rejected() -> None:
    with pytest.raises(ValueError):
        run_stability(StabilityConfig(windows=2, events_per_window=2000))
