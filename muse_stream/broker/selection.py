"""The one place that decides which Kafka a command or a test talks to.

Order: an explicit bootstrap address in MUSE_BOOTSTRAP wins; else, where a Docker engine answers,
a throwaway KRaft container (testcontainers); else the local broker from Maven Central jars.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from muse_stream.broker.kafka_jars import BrokerSetupError, PortTaken
from muse_stream.broker.local import START_TIMEOUT_S, LocalBroker, LocalCluster, free_port_pair
from muse_stream.security.acls import ADMIN

BOOTSTRAP_ENV = "MUSE_BOOTSTRAP"
# How many nodes the test suite's throwaway broker has: 1 (default) or 3, a cluster with replication
# factor 3 and min.insync.replicas=2, on which every integration test then runs.
TEST_NODES_ENV = "MUSE_TEST_NODES"
# Confluent's KRaft-capable image; testcontainers' Kafka module speaks its configuration.
CONTAINER_IMAGE = "confluentinc/cp-kafka:7.9.0"
# Tries of a throwaway broker on another port pair when its ports were taken while it started.
BIND_ATTEMPTS = 3


@dataclass(frozen=True)
class BrokerHandle:
    bootstrap: str
    source: str  # "env", "container" or "local"
    started_here: bool
    # A secured broker's client files (admin and muse's principals), else None.
    credentials_dir: Path | None = None


def docker_engine_answers() -> bool:
    if os.environ.get("MUSE_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)  # type: ignore[attr-defined]  # docker's stubs miss its re-export of from_env
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no Docker"
        return False


@contextlib.contextmanager
def acquire_broker(
    *, stop_if_started: bool = True, allow_container: bool = True, throwaway: bool = False
) -> Iterator[BrokerHandle]:
    """Yield a reachable broker; stop it on exit only if this call started it and asked to.

    ``throwaway`` (the test suite's choice) starts a fresh local broker in a temporary directory
    on free ports and deletes it afterwards, instead of using `muse broker start`'s broker: tests
    then neither disturb a developer's broker nor pile their topics up in it run after run.
    """
    explicit = os.environ.get(BOOTSTRAP_ENV)
    if explicit:
        _check_reachable(explicit, from_env=True)
        yield BrokerHandle(bootstrap=explicit, source="env", started_here=False)
        return
    if allow_container and docker_engine_answers():
        with _kafka_container() as bootstrap:
            yield BrokerHandle(bootstrap=bootstrap, source="container", started_here=True)
        return
    if throwaway:
        with throwaway_broker(nodes=int(os.environ.get(TEST_NODES_ENV) or 1)) as handle:
            yield handle
        return
    broker = LocalCluster.default()
    started = broker.start() if not broker.running() else False
    try:
        yield BrokerHandle(bootstrap=broker.bootstrap, source="local", started_here=started)
    finally:
        if started and stop_if_started:
            broker.stop()


@contextlib.contextmanager
def throwaway_cluster(
    *, nodes: int = 1, secure: bool = False, tls: bool = False, start_timeout_s: float = START_TIMEOUT_S
) -> Iterator[LocalCluster]:
    """A fresh local broker (``nodes`` of them, a cluster) in a temporary directory on free ports,
    deleted afterwards; the cluster itself, for tests that kill and restart its nodes."""
    home = Path(tempfile.mkdtemp(prefix="muse-broker-"))
    broker = LocalCluster(home=home, port=free_port_pair(nodes=nodes), nodes=nodes)
    try:
        for attempt in range(BIND_ATTEMPTS):
            try:
                broker.start(start_timeout_s, secure=secure, tls=tls)
                break
            except BrokerSetupError as error:
                # Free when chosen, taken by the time the broker starts or Kafka binds it: another
                # process (say, another test session's broker) got there first. Fresh storage on the
                # next free pair.
                taken = isinstance(error, PortTaken) or "Address already in use" in str(error)
                if not taken or attempt == BIND_ATTEMPTS - 1:
                    raise
                shutil.rmtree(home, ignore_errors=True)
                broker = LocalCluster(home=home, port=free_port_pair(broker.port + 2 * nodes, nodes=nodes), nodes=nodes)
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def throwaway_broker(*, secure: bool = False, tls: bool = False, nodes: int = 1) -> Iterator[BrokerHandle]:
    """:func:`throwaway_cluster` as a handle. The isolation tests ask for a ``secure`` one, always
    local: only then are its admin's and muse's principals' credentials known (in ``credentials_dir``)."""
    with throwaway_cluster(nodes=nodes, secure=secure, tls=tls) as broker:
        yield BrokerHandle(
            bootstrap=broker.bootstrap,
            source="local (throwaway)",
            started_here=True,
            credentials_dir=broker.members[0].credentials_dir if secure else None,
        )


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    container = (
        KafkaContainer(CONTAINER_IMAGE)
        .with_kraft()
        # testcontainers leaves these at 3 and 2, under which transactions fail on one broker.
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    with container:
        yield container.get_bootstrap_server()


def command_bootstrap() -> str:
    """The broker a CLI command talks to: MUSE_BOOTSTRAP, else the running local broker; checked
    once to answer within the connect timeout, so a wrong address is one clear error."""
    explicit = os.environ.get(BOOTSTRAP_ENV)
    if explicit:
        _check_reachable(explicit, from_env=True)
        return explicit
    broker = LocalCluster.default()
    if not broker.running():
        raise BrokerSetupError(
            f"no broker to talk to: the local broker ({broker.bootstrap}) is not running and {BOOTSTRAP_ENV} "
            "is not set. Start one with `muse broker start`, or export MUSE_BOOTSTRAP=host:port."
        )
    use_admin_login(broker.members[0])
    _check_reachable(broker.bootstrap, from_env=False)
    return broker.bootstrap


def use_admin_login(broker: LocalBroker) -> None:
    """A secured local broker answers logged-in clients only: unless a client config is given,
    this process (and its children) log in as its admin."""
    from muse_stream.clients.settings import CLIENT_CONFIG_ENV

    if broker.secure and not os.environ.get(CLIENT_CONFIG_ENV):
        os.environ[CLIENT_CONFIG_ENV] = str(broker.credential_file(ADMIN))


def _check_reachable(bootstrap: str, *, from_env: bool) -> None:
    from muse_stream.clients.admin import check_reachable

    if from_env:
        check_reachable(
            bootstrap, f"from {BOOTSTRAP_ENV}", f"that {BOOTSTRAP_ENV} names the host:port of a running broker's listener"
        )
    else:
        check_reachable(
            bootstrap,
            f"the local broker, as {BOOTSTRAP_ENV} is not set",
            "`muse broker status` and `muse broker logs`, or export MUSE_BOOTSTRAP=host:port for another cluster",
        )
