"""A real deployment of models trained on synthetic data: train, register, fit, publish.

Shared by the demo, the pipeline benchmarks and the integration tests, so each of them deploys
exactly what an operator's `muse models register` + `muse predictors fit` + `muse config apply`
would, with no second recipe to drift from the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from muse_stream.config.deployment import (
    DeploymentConfig,
    IntentConfig,
    PredictorConfig,
    RouteConfig,
    TenantConfig,
)
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.models import FileArtifactStore, ModelRegistry
from muse_stream.predictors import Predictor, PredictorSpec
from muse_stream.predictors.fitting import fit_predictor_spec
from muse_stream.predictors.spec import MissingPolicy
from muse_stream.synthetic import TrainingParams, generate_events
from muse_stream.topics import TopicNames


def train_and_fit(
    registry: ModelRegistry,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_fit: np.ndarray,
    *,
    training: TrainingParams,
    seed: int,
    model_name: str,
    model_version: str,
    predictor_name: str,
    predictor_version: str,
    missing_policy: MissingPolicy = "xgboost_missing",
) -> PredictorSpec:
    """Train a model, register it (JSON) and fit its predictor on the unlabeled ``X_fit``."""
    booster = training.train(X_train, y_train, seed=seed)
    record = registry.register(bytes(booster.save_raw("json")), name=model_name, version=model_version, b=training.b)
    return fit_predictor_spec(
        record, registry.store, X_fit, name=predictor_name, version=predictor_version, missing_policy=missing_policy
    )


def train_predictor(
    store_dir: Path,
    *,
    name: str = "fraud",
    version: str = "1",
    n_trees: int = 20,
    max_depth: int = 3,
    b: float = 0.2,
    seed: int = 7,
    missing_policy: MissingPolicy = "xgboost_missing",
    n_train: int = 4000,
) -> Predictor:
    """A real predictor trained on synthetic data and registered in ``store_dir``."""
    X, y = generate_events(n_train, seed=seed)
    fit_X, _ = generate_events(4000, seed=seed + 1)
    store = FileArtifactStore(store_dir)
    spec = train_and_fit(
        ModelRegistry(store),
        X,
        y,
        fit_X,
        training=TrainingParams(n_trees, max_depth, b),
        seed=seed,
        model_name=f"{name}-model",
        model_version=version,
        predictor_name=name,
        predictor_version=version,
        missing_policy=missing_policy,
    )
    return Predictor.from_spec(spec, store)


def artifact_bytes(predictor: Predictor, store_dir: Path) -> dict[str, bytes]:
    """The model artifact a predictor runs, keyed by sha256, as the config publisher takes it."""
    sha256 = predictor.spec.model.sha256
    return {sha256: FileArtifactStore(store_dir).get(sha256)}


def deployment(
    tenants: Sequence[str],
    predictors: Mapping[str, Predictor],
    routes: Mapping[tuple[str, str], tuple[str, Sequence[str]]],
    default_intent: str = "card-fraud",
) -> DeploymentConfig:
    intents = sorted({intent for _, intent in routes} | {default_intent})
    return DeploymentConfig.build(
        tenants=[TenantConfig(name=t, default_intent=default_intent) for t in tenants],
        intents=[IntentConfig(name=i) for i in intents],
        predictors=[PredictorConfig(name=name, spec=p.spec) for name, p in predictors.items()],
        routes=[RouteConfig(tenant=t, intent=i, live=live, shadows=tuple(shadows)) for (t, i), (live, shadows) in routes.items()],
    )


def publish(
    bootstrap: str, names: TopicNames, config: DeploymentConfig, predictors: Mapping[str, Predictor], store_dir: Path
) -> int:
    artifacts: dict[str, bytes] = {}
    for predictor in predictors.values():
        artifacts.update(artifact_bytes(predictor, store_dir))
    return ConfigPublisher(bootstrap, names).publish(config, artifacts).version
