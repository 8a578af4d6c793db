"""Model registry: named, versioned XGBoost artifacts, each parsed once while in use.

Registering checks an artifact before anything is written (it parses, its objective emits
probabilities, its feature names agree), so a bad file is refused with a message naming it and
can never replace a good version. :func:`load_booster` keeps a process-wide cache keyed by sha256:
however many predictors share a model, it is read and parsed once. The cache holds boosters weakly,
so a model no predictor uses any more is freed.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson
import xgboost
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from muse_stream.models.store import (
    ArtifactError,
    ArtifactStore,
    RecordStore,
    check_segment,
    sha256_hex,
)

ModelFormat = Literal["json", "ubj"]
PROBABILITY_OBJECTIVES = frozenset({"binary:logistic", "reg:logistic"})


class ModelRecord(BaseModel):
    """Registry metadata of one model version; immutable once registered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: ModelFormat
    b: float = Field(gt=0.0, le=1.0, description="fraction of negatives kept in training")
    feature_names: tuple[str, ...] = Field(min_length=1)
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def detect_format(data: bytes) -> ModelFormat:
    """JSON opens ``{"`` (maybe with whitespace); UBJSON opens ``{`` then a type marker (``L``, ``i``, ...)."""
    head = data[:64].lstrip()
    return "json" if head[:1] == b"{" and head[1:].lstrip()[:1] in (b'"', b"}") else "ubj"


def parse_booster(data: bytes, *, source: str) -> xgboost.Booster:
    """Parse artifact bytes; refuse unparseable files and non-probability objectives."""
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(data))
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except (xgboost.core.XGBoostError, KeyError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ArtifactError(f"model artifact {source} is not a loadable XGBoost model: {first_line}") from error
    if objective not in PROBABILITY_OBJECTIVES:
        raise ArtifactError(
            f"model artifact {source} has objective {objective!r}; a predictor needs probabilities "
            f"({', '.join(sorted(PROBABILITY_OBJECTIVES))})"
        )
    return booster


def check_feature_names(booster: xgboost.Booster, expected: tuple[str, ...] | None, *, source: str) -> tuple[str, ...]:
    """The model's feature names, refusing a disagreement with ``expected``; names a nameless model."""
    own = tuple(booster.feature_names) if booster.feature_names else None
    if own is not None and expected is not None and own != tuple(expected):
        differing = next((i for i, (a, b) in enumerate(zip(own, expected, strict=False)) if a != b), min(len(own), len(expected)))
        raise ArtifactError(
            f"model artifact {source}: feature names disagree with the registry "
            f"({len(own)} in the model vs {len(expected)} expected; first difference at column {differing})"
        )
    names = own if own is not None else (tuple(expected) if expected is not None else None)
    if names is None:
        raise ArtifactError(f"model artifact {source} carries no feature names; pass them when registering")
    if len(names) != booster.num_features():
        raise ArtifactError(f"model artifact {source} has {booster.num_features()} features but {len(names)} names were given")
    if own is None:
        booster.feature_names = list(names)
    return names


_CACHE: weakref.WeakValueDictionary[str, xgboost.Booster] = weakref.WeakValueDictionary()
_LOADS: Counter[str] = Counter()
_LOCK = threading.Lock()


def _describe(store: ArtifactStore, sha256: str) -> str:
    location = getattr(store, "location", None)
    return str(location(sha256)) if callable(location) else f"{sha256} in {store!r}"


def load_booster(sha256: str, store: ArtifactStore, *, feature_names: tuple[str, ...] | None = None) -> xgboost.Booster:
    """The booster for ``sha256``, parsed once for as long as anything holds it (a failed load is
    not cached)."""
    with _LOCK:
        booster = _CACHE.get(sha256)
        source = _describe(store, sha256)
        if booster is None:
            data = store.get(sha256)
            if sha256_hex(data) != sha256:
                raise ArtifactError(f"model artifact {source} does not hash to {sha256}; refusing it")
            booster = parse_booster(data, source=source)
            check_feature_names(booster, feature_names, source=source)
            _CACHE[sha256] = booster
            _LOADS[sha256] += 1
        elif feature_names is not None:
            check_feature_names(booster, feature_names, source=source)
        return booster


def booster_load_counts() -> dict[str, int]:
    """How many times each artifact was parsed in this process (1 each while in use, when sharing works)."""
    with _LOCK:
        return dict(_LOADS)


def clear_booster_cache() -> None:
    """Forget parsed boosters (tests; long-lived processes never need this)."""
    with _LOCK:
        _CACHE.clear()
        _LOADS.clear()


class ModelRegistry:
    """Names and versions over an artifact store that also keeps records."""

    def __init__(self, store: ArtifactStore) -> None:
        if not isinstance(store, RecordStore):
            raise TypeError(f"{store!r} cannot keep registry records (it lacks put_record/get_record/list_records)")
        self.store = store
        self._records: RecordStore = store

    def register(
        self,
        artifact: str | os.PathLike[str] | bytes,
        *,
        name: str,
        version: str,
        b: float,
        feature_names: tuple[str, ...] | list[str] | None = None,
    ) -> ModelRecord:
        """Check and store an artifact (a path or its bytes); re-registering the same bytes is a no-op."""
        check_segment(name, "model name")
        check_segment(version, "model version")
        if isinstance(artifact, bytes):
            data, source = artifact, f"<bytes for {name}:{version}>"
        else:
            source = str(Path(artifact))
            try:
                data = Path(artifact).read_bytes()
            except OSError as error:
                raise ArtifactError(f"cannot read model artifact {source}: {error.strerror}") from error
        booster = parse_booster(data, source=source)
        names = check_feature_names(booster, tuple(feature_names) if feature_names is not None else None, source=source)
        digest = sha256_hex(data)
        existing = self.find(name, version)
        if existing is not None:
            if existing.sha256 != digest:
                raise ArtifactError(
                    f"model {name}:{version} is already registered with sha256 {existing.sha256}; "
                    f"{source} differs ({digest}). Versions are immutable: register it as a new version"
                )
            return existing
        try:
            record = ModelRecord(
                name=name,
                version=version,
                sha256=digest,
                format=detect_format(data),
                b=b,
                feature_names=names,
                created_at=datetime.now(UTC),
            )
        except ValidationError as error:
            raise ArtifactError(f"cannot register {source} as {name}:{version}: {error.errors()[0]['msg']} (b={b})") from error
        self.store.put(data)
        self._records.put_record(name, version, record.model_dump_json().encode())
        return record

    def find(self, name: str, version: str) -> ModelRecord | None:
        raw = self._records.get_record(name, version)
        if raw is None:
            return None
        try:
            return ModelRecord.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as error:
            raise ArtifactError(f"registry record {name}:{version} is corrupt ({error}); re-register the model") from error

    def get(self, name: str, version: str) -> ModelRecord:
        record = self.find(name, version)
        if record is None:
            raise ArtifactError(f"model {name}:{version} is not registered in {self.store!r}; register it first")
        return record

    def resolve(self, ref: str) -> ModelRecord:
        """``NAME:VERSION`` -> record."""
        name, sep, version = ref.partition(":")
        if not sep or not name or not version:
            raise ArtifactError(f"model reference {ref!r} must look like NAME:VERSION")
        return self.get(name, version)

    def records(self) -> list[ModelRecord]:
        return [ModelRecord.model_validate(orjson.loads(raw)) for raw in self._records.list_records()]

    def load(self, record: ModelRecord) -> xgboost.Booster:
        return load_booster(record.sha256, self.store, feature_names=record.feature_names)
