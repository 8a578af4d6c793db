"""Posterior Correction and the generalized prior-shift correction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from muse_stream.errors import MuseError
from muse_stream.transforms import (
    TransformInputError,
    inverse_posterior_correction,
    posterior_correction,
    prior_shift_correction,
    undersampled_prevalence,
)

probabilities = arrays(np.float64, st.integers(1, 200), elements=st.floats(0.0, 1.0))
keep_fractions = st.floats(1e-4, 1.0)
# The transform's slope reaches 1/b (1e4 at the smallest b), so a few ulps of rounding can grow to
# ~1e-12 (hypothesis found 1.01e-12); 1e-10 still fails any real mistake in the formula by far.
TOLERANCE = 1e-10


@given(probabilities)
def test_identity_at_b_equal_one(scores: np.ndarray) -> None:
    assert np.array_equal(posterior_correction(scores, 1.0), scores)
    assert np.array_equal(inverse_posterior_correction(scores, 1.0), scores)


@given(probabilities, keep_fractions)
def test_inverse_round_trips(scores: np.ndarray, b: float) -> None:
    corrected = posterior_correction(scores, b)
    assert np.max(np.abs(inverse_posterior_correction(corrected, b) - scores)) <= TOLERANCE
    assert np.max(np.abs(posterior_correction(inverse_posterior_correction(scores, b), b) - scores)) <= TOLERANCE


@given(probabilities, keep_fractions)
def test_undoes_undersampling_as_bayes_rule_says(true_posterior: np.ndarray, b: float) -> None:
    # Keeping a fraction b of negatives multiplies the negative likelihood mass by b.
    undersampled_score = true_posterior / (true_posterior + b * (1.0 - true_posterior))
    assert np.max(np.abs(posterior_correction(undersampled_score, b) - true_posterior)) <= TOLERANCE


@given(probabilities, keep_fractions, st.floats(1e-4, 0.5))
def test_prior_shift_generalizes_undersampling(scores: np.ndarray, b: float, prevalence: float) -> None:
    train = undersampled_prevalence(prevalence, b)
    shifted = prior_shift_correction(scores, train, prevalence)
    assert np.max(np.abs(shifted - posterior_correction(scores, b))) <= TOLERANCE


@given(probabilities, keep_fractions)
def test_never_raises_a_score_and_stays_in_unit_interval(scores: np.ndarray, b: float) -> None:
    corrected = posterior_correction(scores, b)
    assert np.all(corrected <= scores)
    assert np.all((corrected >= 0.0) & (corrected <= 1.0))


@given(keep_fractions.filter(lambda b: b < 1.0))
def test_strictly_increasing(b: float) -> None:
    grid = np.linspace(0.0, 1.0, 1001)
    assert np.all(np.diff(posterior_correction(grid, b)) > 0)


@pytest.mark.parametrize("b", [0.0, 1.5, -0.1, float("nan"), float("inf")])
def test_rejects_invalid_b(b: float) -> None:
    with pytest.raises(TransformInputError, match="b="):
        posterior_correction([0.5], b)
    with pytest.raises(TransformInputError):
        inverse_posterior_correction([0.5], b)


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan")])
def test_rejects_scores_outside_unit_interval_or_nan(bad: float) -> None:
    with pytest.raises(TransformInputError, match="index 1"):
        posterior_correction([0.3, bad, 0.4], 0.1)
    with pytest.raises(MuseError):
        prior_shift_correction([bad], 0.2, 0.02)


@pytest.mark.parametrize("train,target", [(0.0, 0.1), (0.1, 1.0), (float("nan"), 0.1)])
def test_prior_shift_rejects_degenerate_prevalence(train: float, target: float) -> None:
    with pytest.raises(TransformInputError, match="prevalence"):
        prior_shift_correction([0.5], train, target)
