"""The control plane: the declared deployment, its atomic publication, and the watcher that applies it.

Data-plane workers need only :class:`ConfigWatcher`: ``watcher.current.route(tenant, intent)``.
"""

from muse_stream.config.artifact_topic import KafkaArtifactStore
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
from muse_stream.config.publisher import (
    ConfigDiff,
    ConfigPublisher,
    PublishError,
    PublishResult,
)
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.config.state import ConfigState, Rejection, read_config_log
from muse_stream.config.watcher import ConfigWatcher

__all__ = [
    "ConfigDiff",
    "ConfigError",
    "ConfigPublisher",
    "ConfigSnapshot",
    "ConfigState",
    "ConfigWatcher",
    "DeploymentConfig",
    "IntentConfig",
    "KafkaArtifactStore",
    "LoadedDeployment",
    "ModelEntry",
    "PredictorConfig",
    "PublishError",
    "PublishResult",
    "Rejection",
    "RouteConfig",
    "TenantConfig",
    "VersionMarker",
    "load_deployment_file",
    "read_config_log",
]
