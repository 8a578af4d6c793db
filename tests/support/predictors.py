"""Small real predictors for tests: trained on synthetic data, registered in a temporary store."""

from __future__ import annotations

from pathlib import Path

from muse_stream.predictors import Predictor
from muse_stream.synthetic_deployment import artifact_bytes, train_predictor

__all__ = ["artifact_bytes", "small_predictor"]


def small_predictor(
    store_dir: Path,
    *,
    name: str = "fraud",
    version: str = "1",
    n_trees: int = 20,
    max_depth: int = 3,
    b: float = 0.2,
    seed: int = 7,
    missing_policy: str = "xgboost_missing",
) -> Predictor:
    return train_predictor(
        store_dir, name=name, version=version, n_trees=n_trees, max_depth=max_depth, b=b, seed=seed, missing_policy=missing_policy
    )
