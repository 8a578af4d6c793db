"""The control plane: the declared deployment, its atomic publication, and the watcher that applies it.

This package's namespace holds the pure parts only (the config model, TOML files, snapshots), so a
replay or a validator imports them without a Kafka client. The Kafka parts live in their modules:
:mod:`~muse_stream.config.publisher` (atomic publication), :mod:`~muse_stream.config.watcher`
(data-plane workers need only ``watcher.current.route(tenant, intent)``),
:mod:`~muse_stream.config.state` (reading the config log) and
:mod:`~muse_stream.config.artifact_topic` (model artifacts on the models topic).
"""

from muse_stream.config.deployment import (
    ConfigError,
    DeploymentConfig,
    IntentConfig,
    ModelEntry,
    PredictorConfig,
    RouteConfig,
    TenantConfig,
    VersionMarker,
)
from muse_stream.config.files import LoadedDeployment, load_deployment_file
from muse_stream.config.snapshot import ConfigSnapshot

__all__ = [
    "ConfigError",
    "ConfigSnapshot",
    "DeploymentConfig",
    "IntentConfig",
    "LoadedDeployment",
    "ModelEntry",
    "PredictorConfig",
    "RouteConfig",
    "TenantConfig",
    "VersionMarker",
    "load_deployment_file",
]
