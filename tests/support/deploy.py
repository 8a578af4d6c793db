"""Publish a deployment (tenants, intents, predictors, routes) to a test namespace's config topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from muse_stream.config.models import DeploymentConfig, IntentConfig, PredictorConfig, RouteConfig, TenantConfig
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.predictors import Predictor
from muse_stream.topics import TopicAdmin, TopicNames
from tests.support.predictors import artifact_bytes


def deployment(tenants: Sequence[str], predictors: Mapping[str, Predictor],
               routes: Mapping[tuple[str, str], tuple[str, Sequence[str]]], default_intent: str = "card-fraud") -> DeploymentConfig:
    intents = sorted({intent for _, intent in routes} | {default_intent})
    return DeploymentConfig.build(
        tenants=[TenantConfig(name=t, default_intent=default_intent) for t in tenants],
        intents=[IntentConfig(name=i) for i in intents],
        predictors=[PredictorConfig(name=name, spec=p.spec) for name, p in predictors.items()],
        routes=[RouteConfig(tenant=t, intent=i, live=live, shadows=tuple(shadows))
                for (t, i), (live, shadows) in routes.items()],
    )


def publish(bootstrap: str, names: TopicNames, config: DeploymentConfig, predictors: Mapping[str, Predictor],
            store_dir: Path) -> int:
    artifacts: dict[str, bytes] = {}
    for predictor in predictors.values():
        artifacts.update(artifact_bytes(predictor, store_dir))
    return ConfigPublisher(bootstrap, names).publish(config, artifacts).version


def create_tenants(bootstrap: str, names: TopicNames, tenants: Sequence[str], partitions: int = 1) -> None:
    admin = TopicAdmin(bootstrap)
    specs = names.internal_topic_specs()
    for tenant in tenants:
        specs += names.tenant_topic_specs(tenant, partitions)
    admin.ensure(specs)
