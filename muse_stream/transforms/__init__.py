"""Score transforms of a predictor: Posterior Correction, then Quantile Mapping onto a reference."""

from muse_stream.transforms.posterior import (
    TransformInputError,
    inverse_posterior_correction,
    posterior_correction,
    prior_shift_correction,
    undersampled_prevalence,
)
from muse_stream.transforms.quantile_map import DEFAULT_N_KNOTS, QuantileMap
from muse_stream.transforms.reference import (
    DEFAULT_CURVE,
    AlertRateCurve,
    EmpiricalReference,
    Reference,
)
from muse_stream.transforms.samples import MIN_FIT_SAMPLES

__all__ = [
    "DEFAULT_CURVE",
    "DEFAULT_N_KNOTS",
    "MIN_FIT_SAMPLES",
    "AlertRateCurve",
    "EmpiricalReference",
    "QuantileMap",
    "Reference",
    "TransformInputError",
    "inverse_posterior_correction",
    "posterior_correction",
    "prior_shift_correction",
    "undersampled_prevalence",
]
