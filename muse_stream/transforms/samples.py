"""Validation of score samples that transforms are fitted on: size, NaN, range."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from muse_stream.transforms.posterior import TransformInputError, as_probabilities

#: Fewest scores a quantile map (or empirical reference) is fitted from. With the default knot
#: grid (spacing 1/256 in probability) this keeps the alert-rate error at any threshold below 0.01:
#: at most ``1/256 + 1.5/n`` for a sample without ties.
MIN_FIT_SAMPLES = 1000


def check_sample(scores: npt.ArrayLike, what: str) -> np.ndarray:
    """A 1-d float64 copy of ``scores``; refuses empty, too-small, NaN or out-of-[0, 1] samples."""
    sample = np.array(scores, dtype=np.float64).ravel()
    if sample.size == 0:
        raise TransformInputError(f"{what}: the sample is empty; fit on at least {MIN_FIT_SAMPLES} scores")
    if sample.size < MIN_FIT_SAMPLES:
        raise TransformInputError(
            f"{what}: {sample.size} scores are too few to hold alert rates within 0.01; "
            f"fit on at least {MIN_FIT_SAMPLES} (use a longer fit window)"
        )
    return as_probabilities(sample, what=what)
