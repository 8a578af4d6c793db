"""Posterior Correction: undo the prior shift that negative undersampling puts into a model's scores.

A model trained on data where only a fraction ``b`` of the negatives were kept over-estimates the
fraud probability. ``T(s; b) = b*s / (1 - (1 - b)*s)`` (Dal Pozzolo et al., CIDM 2015) maps its
scores back to the population prior. The general form, :func:`prior_shift_correction`, moves scores
from any training prevalence to any target prevalence by Bayes' rule; undersampling is the special
case ``target = pi``, ``train = pi / (pi + b*(1 - pi))``.

Bad inputs raise :class:`TransformInputError` rather than propagating a silent NaN downstream.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from muse_stream.errors import MuseError


class TransformInputError(MuseError, ValueError):
    """A score or parameter outside the domain of a transform."""


def _check_b(b: float) -> float:
    value = float(b)
    if not (0.0 < value <= 1.0):  # also False for NaN
        raise TransformInputError(
            f"b={value!r} is not a valid negative-keep fraction: it must be in (0, 1] "
            "(1 = no undersampling; 0.1 = one negative in ten kept)"
        )
    return value


def _check_prevalence(value: float, what: str) -> float:
    number = float(value)
    if not (0.0 < number < 1.0):
        raise TransformInputError(f"{what}={number!r} must be a prevalence strictly between 0 and 1")
    return number


def as_probabilities(scores: npt.ArrayLike, *, what: str = "scores") -> np.ndarray:
    """Return ``scores`` as float64, refusing NaN and values outside [0, 1].

    One ``min``/``max`` pass covers both checks (NaN poisons the reductions), so the hot path pays
    two vector reductions, not a Python loop.
    """
    array = np.asarray(scores, dtype=np.float64)
    if array.size == 0:
        return array
    low, high = float(array.min()), float(array.max())
    if not (low >= 0.0 and high <= 1.0):
        flat = array.ravel()
        bad = np.flatnonzero(~((flat >= 0.0) & (flat <= 1.0)))
        first = int(bad[0])
        raise TransformInputError(
            f"{what} must be probabilities in [0, 1] without NaN; {bad.size} value(s) are not, "
            f"first at flat index {first}: {float(flat[first])!r}"
        )
    return array


def posterior_correction(scores: npt.ArrayLike, b: float) -> np.ndarray:
    """``T(s; b)``: the population-prior probability for a score of a model trained with ``b``."""
    keep = _check_b(b)
    s = as_probabilities(scores)
    if keep == 1.0:
        return s.copy()
    positive = keep * s
    return positive / (positive + (1.0 - s))  # = b*s / (1 - (1-b)*s), exact 1 at s = 1


def inverse_posterior_correction(scores: npt.ArrayLike, b: float) -> np.ndarray:
    """``T^-1(t; b) = t / (b + (1 - b)*t)``: what the undersampled model would have scored."""
    keep = _check_b(b)
    t = as_probabilities(scores)
    if keep == 1.0:
        return t.copy()
    return t / (t + keep * (1.0 - t))  # = t / (b + (1-b)*t), never above 1


def undersampled_prevalence(prevalence: float, b: float) -> float:
    """The positive rate a training set has after keeping a fraction ``b`` of the negatives."""
    pi = _check_prevalence(prevalence, "prevalence")
    keep = _check_b(b)
    return pi / (pi + keep * (1.0 - pi))


def prior_shift_correction(scores: npt.ArrayLike, train_prevalence: float, target_prevalence: float) -> np.ndarray:
    """Re-weight posteriors from the training prevalence to the target one (Bayes' rule on odds).

    ``p' = s*r1 / (s*r1 + (1 - s)*r0)`` with ``r1 = target/train`` and
    ``r0 = (1 - target)/(1 - train)``; equals :func:`posterior_correction` for undersampling.
    """
    train = _check_prevalence(train_prevalence, "train_prevalence")
    target = _check_prevalence(target_prevalence, "target_prevalence")
    s = as_probabilities(scores)
    if train == target:
        return s.copy()
    positive = s * (target / train)
    negative = (1.0 - s) * ((1.0 - target) / (1.0 - train))
    return positive / (positive + negative)
