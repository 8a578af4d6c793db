"""Small models, predictor specs and deployment configs for the config and routing tests."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import xgboost

from muse_stream import synthetic
from muse_stream.config.deployment import (
    DeploymentConfig,
    IntentConfig,
    PredictorConfig,
    RouteConfig,
    TenantConfig,
)
from muse_stream.models.registry import detect_format
from muse_stream.models.store import sha256_hex
from muse_stream.predictors import ModelRef, PredictorSpec
from muse_stream.transforms import AlertRateCurve, QuantileMap, posterior_correction

B = 0.2
TENANTS = ("bank-a", "bank-b", "bank-c")
INTENTS = ("card-fraud", "account-takeover")


@functools.cache
def model_bytes(seed: int) -> bytes:
    """A 5-tree XGBoost JSON model (about 7 KB), deterministic in ``seed``."""
    X, y = synthetic.generate_events(3000, seed=seed)
    booster = synthetic.train_model(X, y, n_trees=5, max_depth=3, negative_keep_fraction=B, seed=seed)
    return bytes(booster.save_raw("json"))


@functools.cache
def predictor_spec(name: str, version: str, seed: int) -> PredictorSpec:
    data = model_bytes(seed)
    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    X, _ = synthetic.generate_events(2000, seed=seed + 100)
    qmap = QuantileMap.fit(posterior_correction(booster.inplace_predict(X), B), AlertRateCurve.default(), n_knots=128)
    return PredictorSpec(
        name=name,
        version=version,
        model=ModelRef(name="fraud-gbm", version=str(seed), sha256=sha256_hex(data), format=detect_format(data)),
        feature_names=synthetic.FEATURE_NAMES,
        b=B,
        quantile_map=qmap.to_dict(),
    )


def predictor(name: str, seed: int, version: str = "1") -> PredictorConfig:
    return PredictorConfig(name=name, spec=predictor_spec(name, version, seed))


def deployment(
    routes: dict[tuple[str, str], tuple[str, tuple[str, ...]]] | None = None,
    predictors: tuple[PredictorConfig, ...] | None = None,
) -> DeploymentConfig:
    """Three tenants, two intents, predictors fraud-v1 (model 1) and fraud-v2 (model 2) by default."""
    predictors = predictors or (predictor("fraud-v1", 1), predictor("fraud-v2", 2))
    if routes is None:
        routes = {(t, i): ("fraud-v1", ("fraud-v2",) if t == "bank-a" else ()) for t in TENANTS for i in INTENTS}
    return DeploymentConfig.build(
        tenants=[TenantConfig(name=t, default_intent="card-fraud") for t in TENANTS if any(r[0] == t for r in routes)],
        intents=[IntentConfig(name=i) for i in INTENTS],
        predictors=predictors,
        routes=[RouteConfig(tenant=t, intent=i, live=live, shadows=shadows) for (t, i), (live, shadows) in routes.items()],
    )


def artifacts(*seeds: int) -> dict[str, bytes]:
    return {sha256_hex(model_bytes(s)): model_bytes(s) for s in seeds}


def warm_matrix(rows: int = 4) -> np.ndarray:
    return np.zeros((rows, len(synthetic.FEATURE_NAMES)), dtype=np.float32)


def write_topology(directory: Path, *, extra: str = "") -> Path:
    """The example topology's files under ``directory``: two models, two predictors, a TOML file."""
    (directory / "models").mkdir(parents=True, exist_ok=True)
    (directory / "predictors").mkdir(parents=True, exist_ok=True)
    for seed in (1, 2):
        (directory / "models" / f"fraud-gbm-{seed}.json").write_bytes(model_bytes(seed))
        predictor_spec(f"fraud-v{seed}", "1", seed).save(directory / "predictors" / f"fraud-v{seed}.json")
    path = directory / "topology.toml"
    path.write_text(EXAMPLE_TOML.replace("example/", "") + extra)
    return path


EXAMPLE_TOML = """\
# A muse-stream deployment: `muse config validate|diff|apply FILE`.
# Paths are relative to this file. Tenants ask for an intent, never for a model.

[[intents]]
name = "card-fraud"
description = "card-not-present and card-present payment fraud"

[[intents]]
name = "account-takeover"
description = "logins and account changes by someone other than the owner"

[[tenants]]
name = "bank-a"
default_intent = "card-fraud"

[[tenants]]
name = "bank-b"
default_intent = "card-fraud"

[[tenants]]
name = "bank-c"
default_intent = "account-takeover"

# Model artifacts: uploaded to the models topic (keyed by sha256) before the config is published.
[[models]]
name = "fraud-gbm"
version = "1"
path = "example/models/fraud-gbm-1.json"

[[models]]
name = "fraud-gbm"
version = "2"
path = "example/models/fraud-gbm-2.json"

# Predictors: model -> posterior correction -> quantile map, pinned by a spec file.
[[predictors]]
name = "fraud-v1"
spec = "example/predictors/fraud-v1.json"

[[predictors]]
name = "fraud-v2"
spec = "example/predictors/fraud-v2.json"

# Routes: (tenant, intent) -> live predictor, plus shadows scored on the side.
[[routes]]
tenant = "bank-a"
intent = "card-fraud"
live = "fraud-v1"
shadows = ["fraud-v2"]

[[routes]]
tenant = "bank-a"
intent = "account-takeover"
live = "fraud-v2"

[[routes]]
tenant = "bank-b"
intent = "card-fraud"
live = "fraud-v1"

[[routes]]
tenant = "bank-c"
intent = "account-takeover"
live = "fraud-v2"
shadows = ["fraud-v1"]
"""
