"""The declarative, content-addressed description of a predictor.

A spec pins everything that decides a score: the model artifact (by sha256), its feature order,
the posterior-correction ``b``, the quantile-map knots and the missing-feature policy. Its id is
the sha256 of its canonical JSON (sorted keys, shortest round-trip floats), so two specs with the
same id score identically and any change, however small, yields a new id.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from muse_stream.errors import MuseError, validation_problems
from muse_stream.transforms import QuantileMap

FORMAT: Literal["muse.predictor/1"] = "muse.predictor/1"
MissingPolicy = Literal["xgboost_missing", "reject"]


class PredictorSpecError(MuseError):
    """A predictor spec file that cannot be used as written."""


class ModelRef(BaseModel):
    """Which registered artifact a predictor runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: Literal["json", "ubj"]


class PredictorSpec(BaseModel):
    """``features -> model -> posterior correction(b) -> quantile map``, immutable and versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["muse.predictor/1"] = FORMAT
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    model: ModelRef
    feature_names: tuple[str, ...] = Field(min_length=1)
    b: float = Field(gt=0.0, le=1.0)
    missing_policy: MissingPolicy = "xgboost_missing"
    quantile_map: dict[str, Any]

    @field_validator("feature_names")
    @classmethod
    def _unique_features(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        return names

    @field_validator("quantile_map")
    @classmethod
    def _valid_map(cls, data: dict[str, Any]) -> dict[str, Any]:
        QuantileMap.from_dict(data)  # raises with a precise message when malformed
        return data

    def canonical_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)

    @property
    def id(self) -> str:
        """Content hash: sha256 of the canonical JSON."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def build_quantile_map(self) -> QuantileMap:
        return QuantileMap.from_dict(self.quantile_map)

    def to_json(self) -> str:
        return self.canonical_json().decode()

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<predictor spec>") -> PredictorSpec:
        try:
            return cls.model_validate(orjson.loads(text))
        except orjson.JSONDecodeError as error:
            raise PredictorSpecError(f"predictor spec {source} is not JSON: {error}") from error
        except ValidationError as error:
            raise PredictorSpecError(f"predictor spec {source}: {validation_problems(error, limit=1)}") from error

    def save(self, path: str | os.PathLike[str]) -> Path:
        from muse_stream.models.store import atomic_write

        target = Path(path)
        atomic_write(target, self.canonical_json() + b"\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PredictorSpec:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise PredictorSpecError(f"cannot read predictor spec {path}: {error.strerror}") from error
        return cls.from_json(data, source=str(path))
