"""A runnable predictor: a spec bound to its (shared) booster.

Scoring is ``inplace_predict`` on the float32 matrix plus two vectorized transforms, so the cost over
bare XGBoost stays a few percent. Records (dicts) are turned into the model's column order with
``operator.itemgetter`` and ``np.fromiter``, C-level work per event; only a batch with a missing
feature takes the slower path that applies the missing-feature policy.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost

from muse_stream.errors import MuseError
from muse_stream.models.registry import check_feature_names, load_booster
from muse_stream.models.store import ArtifactStore
from muse_stream.predictors.spec import PredictorSpec
from muse_stream.transforms import posterior_correction


class MissingFeatureError(MuseError):
    """An event lacks a feature and the predictor's policy is ``reject``."""


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of one batch at each stage of the predictor DAG (float64 arrays of equal length)."""

    raw: np.ndarray
    corrected: np.ndarray
    mapped: np.ndarray


class Predictor:
    """Immutable: everything comes from the spec; the booster is shared through the process cache."""

    def __init__(self, spec: PredictorSpec, booster: xgboost.Booster) -> None:
        check_feature_names(booster, spec.feature_names, source=f"{spec.model.name}:{spec.model.version}")
        self.spec = spec
        self.booster = booster
        self.quantile_map = spec.build_quantile_map()
        self.id = spec.id
        self._names = spec.feature_names
        self._reject = spec.missing_policy == "reject"
        self._getter = itemgetter(*self._names) if len(self._names) > 1 else (lambda record: (record[self._names[0]],))

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._names

    def __repr__(self) -> str:
        return f"Predictor({self.spec.name}:{self.spec.version}, id={self.id[:12]})"

    @classmethod
    def from_spec(cls, spec: PredictorSpec, store: ArtifactStore) -> Predictor:
        return cls(spec, load_booster(spec.model.sha256, store, feature_names=spec.feature_names))

    @classmethod
    def load(cls, path: str | os.PathLike[str], store: ArtifactStore) -> Predictor:
        return cls.from_spec(PredictorSpec.load(path), store)

    def save(self, path: str | os.PathLike[str]) -> None:
        self.spec.save(path)

    def _check_matrix(self, matrix: npt.ArrayLike) -> np.ndarray:
        array = np.asarray(matrix, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != len(self._names):
            raise MuseError(
                f"predictor {self.spec.name}:{self.spec.version} expects a (n, {len(self._names)}) matrix in "
                f"the model's feature order, got shape {array.shape}"
            )
        if self._reject:
            self._check_complete(array)
        return array

    def score_batch(self, matrix: npt.ArrayLike) -> ScoreBatch:
        """Raw, corrected and mapped scores for an ``(n, features)`` matrix (NaN = missing)."""
        array = self._check_matrix(matrix)
        raw = self.booster.inplace_predict(array, validate_features=False).astype(np.float64)
        corrected = posterior_correction(raw, self.spec.b)
        return ScoreBatch(raw=raw, corrected=corrected, mapped=self.quantile_map.transform(corrected))

    @property
    def rejects_missing(self) -> bool:
        return self._reject

    def vectorize(self, records: Sequence[Mapping[str, Any]], *, allow_missing: bool = False) -> np.ndarray:
        """A float32 matrix in the model's column order, NaN where a feature is missing.

        Under a ``reject`` policy a missing feature raises, unless ``allow_missing``: then the
        caller sorts out the incomplete rows itself (the streaming scorer dead-letters them alone).
        A value beyond the float32 range becomes +-inf, quietly: callers that must refuse it look
        for inf (the streaming scorer dead-letters those rows).
        """
        count, width = len(records), len(self._names)
        try:
            with np.errstate(over="ignore"):
                matrix = np.fromiter(
                    itertools.chain.from_iterable(map(self._getter, records)), dtype=np.float32, count=count * width
                ).reshape(count, width)
        except (KeyError, TypeError, ValueError):
            matrix = self._vectorize_with_gaps(records)
        if self._reject and not allow_missing:
            self._check_complete(matrix)
        return matrix

    def missing_features(self, row: np.ndarray) -> list[str]:
        """The names of the features a matrix row lacks."""
        return [self._names[column] for column in np.flatnonzero(np.isnan(row))]

    def _check_complete(self, matrix: np.ndarray) -> None:
        missing = np.isnan(matrix)
        if missing.any():
            row = int(np.flatnonzero(missing.any(axis=1))[0])
            raise MissingFeatureError(
                f"predictor {self.spec.name}:{self.spec.version} rejects missing features: "
                f"event {row} lacks {', '.join(map(repr, self.missing_features(matrix[row])))}"
            )

    def _vectorize_with_gaps(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        matrix = np.full((len(records), len(self._names)), np.nan, dtype=np.float32)
        for row, record in enumerate(records):
            for column, name in enumerate(self._names):
                value = record.get(name)
                if value is None:
                    continue
                try:
                    with np.errstate(over="ignore"):
                        matrix[row, column] = value
                except (TypeError, ValueError) as error:
                    raise MuseError(f"event {row}: feature {name!r} = {value!r} is not a number") from error
        return matrix

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> ScoreBatch:
        return self.score_batch(self.vectorize(records))
