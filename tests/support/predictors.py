"""Small real predictors for tests: trained on synthetic data, registered in a temporary store."""

from __future__ import annotations

from pathlib import Path

from muse_stream.models import FileArtifactStore, ModelRegistry
from muse_stream.predictors import Predictor
from muse_stream.predictors.fitting import fit_predictor_spec
from muse_stream.synthetic import generate_events, train_model


def small_predictor(store_dir: Path, *, name: str = "fraud", version: str = "1", n_trees: int = 20,
                    max_depth: int = 3, b: float = 0.2, seed: int = 7, missing_policy: str = "xgboost_missing") -> Predictor:
    X, y = generate_events(4000, seed=seed)
    booster = train_model(X, y, n_trees=n_trees, max_depth=max_depth, negative_keep_fraction=b, seed=seed)
    store = FileArtifactStore(store_dir)
    registry = ModelRegistry(store)
    record = registry.register(bytes(booster.save_raw("json")), name=f"{name}-model", version=version, b=b)
    fit_X, _ = generate_events(4000, seed=seed + 1)
    spec = fit_predictor_spec(record, store, fit_X, name=name, version=version, missing_policy=missing_policy)
    return Predictor.from_spec(spec, store)


def artifact_bytes(predictor: Predictor, store_dir: Path) -> dict[str, bytes]:
    """The model artifact a predictor runs, keyed by sha256, as the config publisher takes it."""
    sha256 = predictor.spec.model.sha256
    return {sha256: FileArtifactStore(store_dir).get(sha256)}
