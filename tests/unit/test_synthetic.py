"""Synthetic fraud data: seeded, shaped as promised, learnable, drifting; and the shared metrics."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from muse_stream.bench.metrics import expected_calibration_error, recall_at_fpr, roc_auc
from muse_stream.synthetic import (
    FEATURE_NAMES,
    downsample_negatives,
    events_as_dicts,
    generate_events,
    generate_stream,
    label_lateness,
    train_model,
)


def test_feature_names_are_30_unique() -> None:
    assert len(FEATURE_NAMES) == 30
    assert len(set(FEATURE_NAMES)) == 30


def test_same_seed_is_bit_identical_and_other_seed_differs() -> None:
    x1, y1 = generate_events(2000, seed=7, drift=0.3)
    x2, y2 = generate_events(2000, seed=7, drift=0.3)
    x3, _ = generate_events(2000, seed=8, drift=0.3)
    assert x1.tobytes() == x2.tobytes() and y1.tobytes() == y2.tobytes()
    assert x1.tobytes() != x3.tobytes()


def test_shapes_and_dtypes() -> None:
    x, y = generate_events(500, seed=1)
    assert x.shape == (500, 30) and x.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.int8
    assert set(np.unique(y)) <= {0, 1}
    assert np.isfinite(x).all()


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_fraud_rate_is_roughly_as_asked(rate: float) -> None:
    _, y = generate_events(40_000, seed=3, fraud_rate=rate)
    # 5 binomial standard deviations
    assert abs(y.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / y.size)


def test_drift_moves_features_and_raises_prevalence() -> None:
    x0, y0 = generate_events(40_000, seed=4, drift=0.0)
    x1, y1 = generate_events(40_000, seed=4, drift=1.0)
    mean_shift = np.abs(x1.mean(axis=0) - x0.mean(axis=0))
    assert mean_shift.max() > 0.3
    assert y1.mean() > y0.mean()


def test_stream_windows_are_seeded_and_independent_of_count() -> None:
    short = generate_stream(2, 1000, seed=5, fraud_rate=0.02, drift_per_window=0.2)
    long = generate_stream(3, 1000, seed=5, fraud_rate=0.02, drift_per_window=0.2)
    assert len(long) == 3
    for (xa, ya), (xb, yb) in zip(short, long[:2], strict=True):
        assert xa.tobytes() == xb.tobytes() and ya.tobytes() == yb.tobytes()
    assert short[0][0].tobytes() != short[1][0].tobytes()


def test_events_as_dicts_keys_by_feature_name() -> None:
    x, _ = generate_events(3, seed=1)
    rows = events_as_dicts(x)
    assert len(rows) == 3 and list(rows[0]) == list(FEATURE_NAMES)
    assert rows[2]["amount_log"] == float(x[2, 0])
    with pytest.raises(ValueError):
        events_as_dicts(x[:, :5])


def test_downsampling_keeps_all_positives_and_fraction_of_negatives() -> None:
    _, y = generate_events(10_000, seed=2)
    rows = downsample_negatives(y, 0.1, seed=0)
    kept = y[rows]
    assert kept.sum() == y.sum()
    assert (kept == 0).sum() == round(0.1 * (y == 0).sum())
    with pytest.raises(ValueError):
        downsample_negatives(y, 0.0, seed=0)


def test_trained_model_is_deterministic_and_learns() -> None:
    x, y = generate_events(20_000, seed=10)
    xt, yt = generate_events(20_000, seed=11)
    kwargs = dict(n_trees=30, max_depth=4, negative_keep_fraction=0.2, seed=1)
    model = train_model(x, y, **kwargs)
    assert model.feature_names == list(FEATURE_NAMES)
    dtest = xgb.DMatrix(xt, feature_names=list(FEATURE_NAMES))
    scores = model.predict(dtest)
    assert roc_auc(scores, yt) > 0.75
    again = train_model(x, y, **kwargs).predict(dtest)
    assert scores.tobytes() == again.tobytes()


def test_roc_auc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 300).astype(float)  # many ties
    y = rng.random(300) < 0.3
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(s, y) == pytest.approx(pairwise, abs=1e-12)
    assert roc_auc([0.1, 0.9], [0, 1]) == 1.0
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])


def test_recall_at_fpr_respects_the_fpr_budget() -> None:
    rng = np.random.default_rng(1)
    s = rng.random(5000)
    y = rng.random(5000) < (0.05 + 0.5 * s)
    for fpr in (0.01, 0.1):
        recall = recall_at_fpr(s, y, fpr)
        cut = np.quantile(s[y], 1 - recall)
        assert 0.0 < recall < 1.0
        assert np.mean(s[~y] >= cut) <= fpr + 0.01
    assert recall_at_fpr(s, y, 0.01) == recall_at_fpr(s**3, y, 0.01)  # strictly increasing transform


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence() -> None:
    s = np.full(1000, 0.3)
    y = np.zeros(1000)
    y[:300] = 1
    assert expected_calibration_error(s, y) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.full(1000, 0.9), y) == pytest.approx(0.6)


def test_labels_arrive_late_fraud_first_and_genuine_when_the_dispute_window_closes() -> None:
    _, y = generate_events(20_000, seed=5)
    day = 86_400_000
    lateness = label_lateness(y, seed=5)
    assert lateness.dtype == np.int64 and np.array_equal(lateness, label_lateness(y, seed=5))
    fraud, genuine = lateness[y == 1] / day, lateness[y == 0] / day
    assert 4.0 < np.median(fraud) < 6.0 and fraud.min() > 0 and np.quantile(fraud, 0.9) > 10
    assert genuine.min() >= 30 and genuine.max() <= 31
    compressed = label_lateness(y, seed=5, day_ms=100.0)  # the demo's clock: a day in 0.1 s
    assert 400 < np.median(compressed[y == 1]) < 600 and compressed[y == 0].min() >= 3000
