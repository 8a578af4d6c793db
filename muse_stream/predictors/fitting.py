"""Fit a predictor spec for a registered model from an unlabeled feature sample.

The one recipe shared by `muse predictors fit`, the demo and the operator workflow: score the
sample with the model, undo the downsampling prior shift, fit the quantile map onto the reference.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from muse_stream.models.registry import ModelRecord, load_booster
from muse_stream.models.store import ArtifactStore
from muse_stream.predictors.spec import MissingPolicy, ModelRef, PredictorSpec
from muse_stream.transforms import AlertRateCurve, QuantileMap, posterior_correction
from muse_stream.transforms import Reference


def fit_predictor_spec(
    record: ModelRecord,
    store: ArtifactStore,
    features: npt.ArrayLike,
    *,
    name: str,
    version: str,
    reference: Reference | None = None,
    missing_policy: MissingPolicy = "xgboost_missing",
) -> PredictorSpec:
    booster = load_booster(record.sha256, store, feature_names=record.feature_names)
    raw = booster.inplace_predict(np.asarray(features, dtype=np.float32), validate_features=False)
    corrected = posterior_correction(np.asarray(raw, dtype=np.float64), record.b)
    quantile_map = QuantileMap.fit(corrected, reference or AlertRateCurve.default())
    return PredictorSpec(
        name=name, version=version,
        model=ModelRef(name=record.name, version=record.version, sha256=record.sha256, format=record.format),
        feature_names=record.feature_names, b=record.b, missing_policy=missing_policy,
        quantile_map=quantile_map.to_dict(),
    )
