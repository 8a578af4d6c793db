"""Fit a predictor spec for a registered model from an unlabeled feature sample.

The one recipe shared by `muse predictors fit`, the demo and the operator workflow: score the
sample with the model, undo the downsampling prior shift, fit the quantile map onto the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from muse_stream.defaults import DEFAULT_RATE_TOLERANCE
from muse_stream.models.registry import ModelRecord, load_booster
from muse_stream.models.store import ArtifactStore
from muse_stream.predictors.spec import MissingPolicy, ModelRef, PredictorSpec
from muse_stream.transforms import (
    DEFAULT_N_KNOTS,
    AlertRateCurve,
    QuantileMap,
    Reference,
    posterior_correction,
)


def corrected_scores(record: ModelRecord, store: ArtifactStore, features: npt.ArrayLike) -> np.ndarray:
    """The model's scores on a feature sample, with its negative downsampling (`b`) undone."""
    booster = load_booster(record.sha256, store, feature_names=record.feature_names)
    raw = booster.inplace_predict(np.asarray(features, dtype=np.float32), validate_features=False)
    return posterior_correction(np.asarray(raw, dtype=np.float64), record.b)


def predictor_spec(
    record: ModelRecord, quantile_map: QuantileMap, *, name: str, version: str, missing_policy: MissingPolicy = "xgboost_missing"
) -> PredictorSpec:
    return PredictorSpec(
        name=name,
        version=version,
        model=ModelRef(name=record.name, version=record.version, sha256=record.sha256, format=record.format),
        feature_names=record.feature_names,
        b=record.b,
        missing_policy=missing_policy,
        quantile_map=quantile_map.to_dict(),
    )


def fit_predictor_spec(
    record: ModelRecord,
    store: ArtifactStore,
    features: npt.ArrayLike,
    *,
    name: str,
    version: str,
    reference: Reference | None = None,
    missing_policy: MissingPolicy = "xgboost_missing",
    n_knots: int = DEFAULT_N_KNOTS,
) -> PredictorSpec:
    quantile_map = QuantileMap.fit(
        corrected_scores(record, store, features), reference or AlertRateCurve.default(), n_knots=n_knots
    )
    return predictor_spec(record, quantile_map, name=name, version=version, missing_policy=missing_policy)


@dataclass(frozen=True)
class EdgeRate:
    """The alert rate a fitted map reproduces on its own fit sample at one reference edge."""

    edge: float
    target: float
    achieved: float

    @property
    def error(self) -> float:
        return self.achieved - self.target


def reproduced_rates(quantile_map: QuantileMap, corrected: npt.ArrayLike, reference: Reference) -> list[EdgeRate]:
    """Target and reproduced alert rate at each edge of ``reference``: a map can only be as fine as
    the distinct scores of its sample, so a model of few trees may miss its targets."""
    mapped = quantile_map.transform(np.asarray(corrected, dtype=np.float64))
    edges = np.asarray(reference.edges, dtype=np.float64)
    return [
        EdgeRate(float(edge), float(target), float(np.mean(mapped >= edge)))
        for edge, target in zip(edges, reference.alert_rate_at(edges), strict=True)
    ]


def missed_rates(rates: list[EdgeRate], tolerance: float = DEFAULT_RATE_TOLERANCE) -> list[EdgeRate]:
    """The edges whose reproduced alert rate is further than ``tolerance`` times its target from it."""
    return [rate for rate in rates if abs(rate.error) > tolerance * rate.target]
