"""Where Kafka comes from: a local KRaft broker built from Maven Central jars, or a cluster you name."""

from muse_stream.broker.local import BrokerStatus, LocalBroker, LocalCluster
from muse_stream.broker.selection import (
    BOOTSTRAP_ENV,
    BrokerHandle,
    acquire_broker,
    command_bootstrap,
)

__all__ = ["BOOTSTRAP_ENV", "BrokerHandle", "BrokerStatus", "LocalBroker", "LocalCluster", "acquire_broker", "command_bootstrap"]
