"""Quantile Mapping onto a declared reference: shape, alert-rate fidelity, serialization, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muse_stream.transforms import (
    MIN_FIT_SAMPLES,
    AlertRateCurve,
    EmpiricalReference,
    QuantileMap,
    TransformInputError,
)

TOLERANCE = 0.01
fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def score_samples(draw: st.DrawFn) -> np.ndarray:
    """Beta samples, optionally rounded (heavy ties) and mixed with point masses."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(MIN_FIT_SAMPLES, 4000))
    sample = rng.beta(draw(st.floats(0.2, 5.0)), draw(st.floats(0.5, 30.0)), n)
    kind = draw(st.sampled_from(["continuous", "rounded", "point_masses"]))
    if kind == "rounded":
        sample = np.round(sample, draw(st.integers(1, 3)))
    elif kind == "point_masses":
        atoms = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3))
        for atom in atoms:
            sample[rng.random(n) < draw(st.floats(0.01, 0.3))] = atom
    return sample


def largest_atom(sample: np.ndarray) -> float:
    return np.unique(sample, return_counts=True)[1].max() / sample.size


def worst_alert_rate_error(mapped: np.ndarray, target_at) -> float:
    """sup over all thresholds of |P(mapped >= t) - target(t)|, exact for a step vs. a monotone curve.

    The empirical survival only jumps at mapped values; the supremum sits at a jump's left or
    right limit, so checking both limits at every distinct mapped value covers all thresholds.
    """
    values = np.sort(mapped)
    jumps = np.unique(values)
    at_or_above = (values.size - np.searchsorted(values, jumps, side="left")) / values.size
    above = (values.size - np.searchsorted(values, jumps, side="right")) / values.size
    target = target_at(jumps)
    return float(max(np.max(np.abs(at_or_above - target)), np.max(np.abs(above - target)), 1.0 - target_at(0.0)))


@fast
@given(score_samples())
def test_reproduces_the_curve_at_every_threshold(sample: np.ndarray) -> None:
    curve = AlertRateCurve.default()
    mapped = QuantileMap.fit(sample, curve).transform(sample)
    # A point mass cannot be split (equal inputs map equally), so it may miss by half its mass.
    allowed = TOLERANCE + largest_atom(sample) / 2 if largest_atom(sample) > 1 / sample.size else TOLERANCE
    assert worst_alert_rate_error(mapped, curve.alert_rate_at) <= allowed


@fast
@given(score_samples(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_alert_rate_at_edges_and_arbitrary_thresholds(sample: np.ndarray, thresholds: list[float]) -> None:
    curve = AlertRateCurve.default()
    mapped = QuantileMap.fit(sample, curve).transform(sample)
    atom = largest_atom(sample) if largest_atom(sample) > 1 / sample.size else 0.0
    for t in [*curve.edges, *thresholds]:
        assert abs(np.mean(mapped >= t) - curve.alert_rate_at(t)) <= TOLERANCE + atom / 2


@fast
@given(st.integers(0, 2**32 - 1), st.integers(MIN_FIT_SAMPLES, 3000))
def test_continuous_sample_holds_edges_within_tolerance(seed: int, n: int) -> None:
    sample = np.random.default_rng(seed).beta(0.6, 9.0, n)
    curve = AlertRateCurve.default()
    mapped = QuantileMap.fit(sample, curve).transform(sample)
    achieved = np.array([np.mean(mapped >= e) for e in curve.edges])
    assert np.max(np.abs(achieved - np.array(curve.rates))) <= TOLERANCE


def test_custom_curve_is_honoured() -> None:
    curve = AlertRateCurve.parse("0.3:0.5,0.9:0.001")
    sample = np.random.default_rng(3).beta(2.0, 5.0, 20_000)
    mapped = QuantileMap.fit(sample, curve).transform(sample)
    assert worst_alert_rate_error(mapped, curve.alert_rate_at) <= TOLERANCE
    assert abs(np.mean(mapped >= 0.9) - 0.001) <= 0.0005


@fast
@given(score_samples(), st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50))
def test_non_decreasing_in_unit_interval_and_deterministic(sample: np.ndarray, queries: list[float]) -> None:
    qmap = QuantileMap.fit(sample, AlertRateCurve.default())
    points = np.sort(np.array(queries))
    mapped = qmap.transform(points)
    assert not np.isnan(mapped).any()
    assert np.all(np.diff(mapped) >= 0)
    assert np.all((mapped >= 0) & (mapped <= 1))
    repeated = qmap.transform(np.repeat(points[:1], 5))
    assert np.all(repeated == mapped[0])
    assert np.array_equal(np.array([qmap.transform([p])[0] for p in points]), mapped)


def test_continuous_and_clipped_outside_fitted_range() -> None:
    sample = np.random.default_rng(1).uniform(0.2, 0.6, 2000)
    qmap = QuantileMap.fit(sample, AlertRateCurve.default())
    steps = np.diff(qmap.transform(np.linspace(0.0, 1.0, 200_001)))
    assert steps.max() < 0.01  # no jumps: a 5e-6 input step never moves the output by 0.01
    assert qmap.transform([0.0, 0.1, sample.min()]).tolist() == [qmap.y[0]] * 3
    assert qmap.transform([1.0, 0.9, sample.max()]).tolist() == [qmap.y[-1]] * 3


@fast
@given(score_samples())
def test_json_round_trip_is_bit_identical(sample: np.ndarray) -> None:
    qmap = QuantileMap.fit(sample, AlertRateCurve.default())
    again = QuantileMap.from_json(qmap.to_json())
    probe = np.concatenate([sample, np.random.default_rng(0).random(500)])
    assert np.array_equal(qmap.transform(probe).view(np.uint64), again.transform(probe).view(np.uint64))
    assert again == qmap and again.to_json() == qmap.to_json()


def test_heavy_ties_do_not_crash_or_nan() -> None:
    sample = np.zeros(5000)
    sample[:50] = 1.0
    sample[50:100] = 0.5
    mapped = QuantileMap.fit(sample, AlertRateCurve.default()).transform(sample)
    assert not np.isnan(mapped).any()
    assert len(np.unique(mapped)) == 3


@pytest.mark.parametrize(
    "sample,message",
    [
        (np.array([]), "empty"),
        (np.full(MIN_FIT_SAMPLES - 1, 0.3), "too few"),
        (np.r_[np.linspace(0, 1, MIN_FIT_SAMPLES), np.nan], "NaN"),
        (np.r_[np.linspace(0, 1, MIN_FIT_SAMPLES), 1.5], r"\[0, 1\]"),
        (np.full(MIN_FIT_SAMPLES, 0.3), "constant"),
    ],
)
def test_rejects_unusable_fit_samples(sample: np.ndarray, message: str) -> None:
    with pytest.raises(TransformInputError, match=message):
        QuantileMap.fit(sample, AlertRateCurve.default())


def test_rejects_nan_at_transform_and_coarse_grids() -> None:
    qmap = QuantileMap.fit(np.linspace(0, 1, MIN_FIT_SAMPLES), AlertRateCurve.default())
    with pytest.raises(TransformInputError, match="NaN"):
        qmap.transform([0.2, np.nan])
    with pytest.raises(TransformInputError, match="n_knots"):
        QuantileMap.fit(np.linspace(0, 1, MIN_FIT_SAMPLES), AlertRateCurve.default(), n_knots=10)


@pytest.mark.parametrize(
    "text",
    ["{", '{"format": "other"}', '{"format": "muse.quantile_map/1", "x": [0.5, 0.2], "y": [0, 1], "reference": {}, "n_fit": 1}'],
)
def test_rejects_malformed_json(text: str) -> None:
    with pytest.raises(TransformInputError):
        QuantileMap.from_json(text)


def test_default_curve_endpoints_edges_and_monotone_interpolation() -> None:
    curve = AlertRateCurve.default()
    assert curve.edges == (0.2, 0.5, 0.6, 0.8)
    assert np.allclose(curve.alert_rate_at(curve.edges), curve.rates, atol=1e-15)
    assert curve.alert_rate_at([0.0, 1.0]).tolist() == [1.0, 0.0]
    rates = curve.alert_rate_at(np.linspace(0, 1, 10_001))
    assert np.all(np.diff(rates) < 0)
    thresholds = np.linspace(0.001, 0.999, 97)
    assert np.max(np.abs(curve.threshold_at(curve.alert_rate_at(thresholds)) - thresholds)) < 1e-9


@pytest.mark.parametrize("curve", [{0.2: 0.3, 0.5: 0.6}, {0.0: 0.5}, {0.5: 1.0}, {}])
def test_rejects_invalid_curves(curve: dict[float, float]) -> None:
    with pytest.raises(TransformInputError):
        AlertRateCurve.from_mapping(curve)


def test_parse_rejects_garbage() -> None:
    with pytest.raises(TransformInputError, match="EDGE:RATE"):
        AlertRateCurve.parse("0.2=0.7")


@fast
@given(score_samples(), st.integers(0, 2**32 - 1))
def test_empirical_reference_reproduces_reference_alert_rates(sample: np.ndarray, seed: int) -> None:
    live = np.random.default_rng(seed).beta(1.5, 6.0, 3000)  # today's predictor's scores
    reference = EmpiricalReference.from_scores(live)
    mapped = QuantileMap.fit(sample, reference).transform(sample)
    atom = largest_atom(sample) if largest_atom(sample) > 1 / sample.size else 0.0
    for t in np.concatenate([np.linspace(0, 1, 101), live[::30]]):
        assert abs(np.mean(mapped >= t) - np.mean(live >= t)) <= TOLERANCE + atom / 2
    assert reference.describe()["n"] == 3000


def test_empirical_reference_rejects_small_or_nan() -> None:
    with pytest.raises(TransformInputError, match="too few"):
        EmpiricalReference.from_scores(np.linspace(0, 1, 10))
    with pytest.raises(TransformInputError, match="NaN"):
        EmpiricalReference.from_scores(np.r_[np.linspace(0, 1, MIN_FIT_SAMPLES), np.nan])
