"""A local Apache Kafka 4.x in KRaft combined (broker + controller) mode on 127.0.0.1: one node, or a
cluster of three with a production cluster's durability settings.

One directory holds everything about one node (`LocalBroker`): its properties, data, pid file and
log. The pid file records the process's start time as well, so `stop` never signals a recycled pid.
A `LocalCluster` is one node in its home (the single broker), or N nodes in `node-<id>/`
subdirectories, which it starts together (a KRaft quorum needs a majority before any node serves).
"""

from __future__ import annotations

import base64
import enum
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_state_dir

from muse_stream.broker.kafka_jars import (
    KAFKA_VERSION,
    TOOL_JVM_OPTIONS,
    BrokerSetupError,
    PortTaken,
    ensure_kafka_jars,
    require_java,
)
from muse_stream.broker.tls import BrokerTls
from muse_stream.security.acls import ADMIN, SCRAM_MECHANISM, SERVICE_PRINCIPALS
from muse_stream.security.credentials import (
    ScramLogin,
    new_password,
    read_login,
    write_client_properties,
    write_private,
)

DEFAULT_PORT = 19092
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

# Warnings, plus the servers' start and stop lines. At INFO, Kafka logs several lines per partition
# on every topic creation and deletion: one broker.log reached 266 MB in an afternoon of benchmarks
# (the log is the broker's stdout, so nothing rotates it).
_LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.brokerserver.name = kafka.server.BrokerServer
logger.brokerserver.level = INFO
"""


class BrokerStatus(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    STALE_PID = "dead (stale pid file)"


def default_home() -> Path:
    return Path(os.environ.get("MUSE_HOME") or user_state_dir("muse-stream")) / "broker"


# What a production cluster has: every record on three brokers, written to two before it counts, and
# no out-of-sync replica ever elected leader (which would lose committed records).
CLUSTER_REPLICATION = 3
CLUSTER_MIN_INSYNC = 2


def replication_settings(nodes: int) -> dict[str, str]:
    """Replication of the internal topics (offsets, transactions, share state) and the defaults for
    others: 1 on one node (where transactions and groups work only so), else 3 with 2 in sync."""
    factor = str(min(nodes, CLUSTER_REPLICATION))
    min_isr = "1" if nodes < CLUSTER_REPLICATION else str(CLUSTER_MIN_INSYNC)
    settings = {
        "offsets.topic.replication.factor": factor,
        "transaction.state.log.replication.factor": factor,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": factor,
        "share.coordinator.state.topic.min.isr": min_isr,
    }
    if nodes > 1:
        settings |= {
            "default.replication.factor": factor,
            "min.insync.replicas": min_isr,
            "unclean.leader.election.enable": "false",
        }
    return settings


def server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    node_id: int = 1,
    voters: tuple[tuple[int, int], ...] = (),
    admin: ScramLogin | None = None,
    tls: BrokerTls | None = None,
) -> str:
    """A node's settings under which transactions and consumer groups work; ``voters``, the
    (node id, controller port) of every node of a cluster, or empty for one standalone node; with
    ``admin``, the secured broker of :func:`secure_settings` (one node only)."""
    quorum = (
        {"controller.quorum.voters": ",".join(f"{n}@127.0.0.1:{p}" for n, p in voters)}
        if voters
        else {"controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}"}
    )
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        **quorum,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        **(secure_settings(port, controller_port, admin, tls) if admin else {}),
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # Topics are created explicitly with their configs checked; a typo must not make a topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.num.partitions": "8",
        **replication_settings(max(len(voters), 1)),
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def secure_settings(port: int, controller_port: int, admin: ScramLogin, tls: BrokerTls | None) -> dict[str, str]:
    """SASL/SCRAM-SHA-512 on the client listener (over TLS with ``tls``), Kafka's KRaft authorizer,
    and no access at all without an ACL. The broker talks to itself over the client listener as
    the admin super user. The controller listener stays PLAINTEXT on loopback: there the combined
    node's own broker reaches its controller as User:ANONYMOUS, which must therefore be a super
    user too; clients never get ANONYMOUS, as the client listener requires SASL."""
    listener = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    jaas = (
        f"org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{admin.username}" password="{admin.password}";'
    )
    settings = {
        "listeners": f"{listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{listener}://127.0.0.1:{port}",
        "inter.broker.listener.name": listener,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{listener}:{listener}",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.{listener.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{admin.username};User:ANONYMOUS",
    }
    if tls:
        settings.update(
            {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(tls.keystore),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(tls.ca_file),
                "ssl.client.auth": "none",
            }
        )
    return settings


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with '-' (which the
    storage tool would read as an option; Kafka's own Uuid.randomUuid skips those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(first: int = 29300, last: int = 29900, *, nodes: int = 1) -> int:
    """A port p with p to p+2*nodes-1 free on 127.0.0.1: each node's client and controller listeners.
    The scan starts at a random block, so test sessions running side by side rarely race for one."""
    width = 2 * nodes
    blocks = list(range(first, last - width + 1, width))
    start = random.randrange(len(blocks))
    for port in blocks[start:] + blocks[:start]:
        if all(port_is_free(p) for p in range(port, port + width)):
            return port
    raise BrokerSetupError(
        f"no {width} adjacent free ports between {first} and {last} on 127.0.0.1; free some or set MUSE_BOOTSTRAP"
    )


def _process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is dead
        return None
    return int(fields[19])


@dataclass(frozen=True)
class LocalBroker:
    """A local broker (one node) rooted at `home`; every method is safe to call in any state.
    ``voters`` and ``cluster_id`` make it a node of a cluster (see LocalCluster)."""

    home: Path
    port: int = DEFAULT_PORT
    version: str = KAFKA_VERSION
    heap: str = "1g"
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()
    cluster_id: str | None = None

    @classmethod
    def default(cls) -> LocalBroker:
        port = int(os.environ.get("MUSE_BROKER_PORT", DEFAULT_PORT))
        return cls(home=default_home(), port=port)

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    # -- security (``start(secure=True)``) -----------------------------------------------------

    @property
    def credentials_dir(self) -> Path:
        """Client properties files (mode 600) of the admin and muse's own principals."""
        return self.home / "credentials"

    def credential_file(self, principal: str) -> Path:
        return self.credentials_dir / f"{principal}.properties"

    @property
    def tls(self) -> BrokerTls:
        return BrokerTls(self.home / "tls")

    @property
    def secure(self) -> bool:
        """True when this broker's storage was formatted with SCRAM credentials (``--secure``)."""
        return self.credential_file(ADMIN).exists()

    def admin_login(self) -> ScramLogin | None:
        return read_login(self.credential_file(ADMIN)) if self.secure else None

    # -- state -------------------------------------------------------------------------------

    def _recorded_process(self) -> tuple[int, int] | None:
        try:
            pid_text, ticks_text = self.pid_file.read_text().split()
            return int(pid_text), int(ticks_text)
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        recorded = self._recorded_process()
        if recorded is None:
            return None
        pid, ticks = recorded
        return pid if _process_start_ticks(pid) == ticks else None

    def status(self) -> BrokerStatus:
        if self.running_pid() is not None:
            return BrokerStatus.RUNNING
        return BrokerStatus.STALE_PID if self.pid_file.exists() else BrokerStatus.STOPPED

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log file)"

    def is_ready(self, timeout: float = 2.0) -> bool:
        """True once the broker answers a metadata request."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=timeout).close()
        except OSError:
            return False
        from confluent_kafka.admin import AdminClient

        from muse_stream.clients.settings import admin_config

        login = self.admin_login()  # a secured broker answers its admin only
        security = login.properties() if login else {}
        admin = AdminClient(admin_config(self.bootstrap, plaintext=True, log_level=0, **security))
        try:
            metadata = admin.list_topics(timeout=timeout)
        except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
            return False
        return bool(metadata.brokers)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S, *, secure: bool = False, tls: bool = False) -> bool:
        """Start the broker and wait until it serves metadata. Returns False if it was already running.

        ``secure`` (only when the storage is first formatted; a secured broker stays secured):
        SASL/SCRAM-SHA-512, ACLs required, and a credential file for the admin and each of muse's
        principals in :attr:`credentials_dir`; ``tls`` adds TLS with a locally made CA."""
        process = self.launch(secure=secure, tls=tls)
        if process is None:
            return False
        self.wait_ready(process, timeout)
        return True

    def kill(self) -> bool:
        """SIGKILL the node, as a crash would (a fault drill); False if it was not running."""
        pid = self.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        while self.running_pid() is not None:
            _reap(pid)
            time.sleep(0.05)
        return True

    def launch(self, *, secure: bool = False, tls: bool = False) -> subprocess.Popen[bytes] | None:
        """Start the process without waiting for it to serve; None if it was already running.
        ``secure`` and ``tls`` as for :meth:`start`."""
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and secure and not self.secure:
            raise BrokerSetupError(
                f"the broker in {self.home} was formatted without --secure and keeps its data; to secure it, "
                f"stop it and delete {self.home}, or use another MUSE_HOME for the secured broker"
            )
        if self.status() is BrokerStatus.RUNNING:
            return None
        if not formatted and secure:
            self._make_credentials(tls)
        self.pid_file.unlink(missing_ok=True)
        for port, role in ((self.port, "client"), (self.controller_port, "controller")):
            if not port_is_free(port):
                raise PortTaken(
                    f"port {port} on 127.0.0.1 ({role} listener) is taken by another process: stop it, "
                    f"or pick free ports with MUSE_BROKER_PORT=<port> (uses <port> and <port>+1)."
                )
        java = require_java()
        libs = ensure_kafka_jars(self.version)
        self._write_config()
        self._format_storage(java, libs)
        command = [
            java,
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        ticks = _process_start_ticks(process.pid)
        self.pid_file.write_text(f"{process.pid} {ticks}\n")
        return process

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the launched process serves metadata; a process that exits or never answers is
        stopped and its log's last lines raised."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerSetupError(
                    f"the Kafka broker exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if self.is_ready(timeout=1.0) and process.poll() is None:  # not another broker on a raced port
                return
            time.sleep(0.3)
        self.stop()
        raise BrokerSetupError(
            f"the Kafka broker did not answer on {self.bootstrap} within {timeout:.0f} s; "
            f"last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the broker this directory started, and only that one. Returns False if none ran."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running_pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.running_pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.running_pid() is not None:
                _reap(pid)
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        login = self.admin_login()
        write_private(
            self.properties_file,
            server_properties(
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
                node_id=self.node_id,
                voters=self.voters,
                admin=login,
                tls=self.tls if login and login.ca_file else None,
            ),
        )
        (self.home / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)

    def _format_storage(self, java: str, libs: Path) -> None:
        """Format the KRaft log directory once; an existing one keeps its data and cluster id."""
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        # One node is its own quorum; a cluster's nodes share the id and name their voters in their properties.
        quorum = [] if self.voters else ["--standalone"]
        result = subprocess.run(
            [
                java,
                *TOOL_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                *quorum,
                "-t",
                cluster_id,
                "-c",
                str(self.properties_file),
                *self._scram_arguments(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerSetupError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()[-2000:]}"
            )

    def _make_credentials(self, tls: bool) -> None:
        """A random password for the admin and each of muse's principals, in their client files;
        :meth:`_format_storage` bootstraps them into the cluster metadata."""
        ca_file = self.tls.ensure().ca_file if tls else None
        for principal in (ADMIN, *SERVICE_PRINCIPALS):
            write_client_properties(self.credential_file(principal), ScramLogin(principal, new_password(), ca_file))

    def _scram_arguments(self) -> list[str]:
        arguments: list[str] = []
        if self.secure:
            for principal in (ADMIN, *SERVICE_PRINCIPALS):
                login = read_login(self.credential_file(principal))
                arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={login.username},password={login.password}]"]
        return arguments


NODES_FILE = "nodes"
# Secured nodes would need the controller listener secured and SCRAM credentials bootstrapped on
# every node's storage (StorageTool --add-scram with one cluster id); not built yet.
SECURE_CLUSTER_REFUSAL = (
    "muse broker start --secure runs one node, not {nodes}: drop --nodes for the secured local broker, or drop "
    "--secure for a {nodes}-node plaintext cluster (a secured cluster: see the README, On a real cluster, across machines)"
)


@dataclass(frozen=True)
class LocalCluster:
    """N local nodes rooted at `home`: one is the single broker in `home` itself (the layout `muse
    broker start` always had); more live in `home/node-<id>`, node i on ports port+2(i-1) and the
    next one. How many nodes a home holds is recorded there, so status, logs and stop find them all."""

    home: Path
    port: int = DEFAULT_PORT
    nodes: int = 1
    heap: str | None = None  # default: 1g for one node, 512m each for a cluster

    @classmethod
    def default(cls, nodes: int | None = None) -> LocalCluster:
        """The cluster in MUSE_HOME on MUSE_BROKER_PORT; ``nodes`` None: as many as it was started with."""
        home = default_home()
        return cls(
            home=home,
            port=int(os.environ.get("MUSE_BROKER_PORT", DEFAULT_PORT)),
            nodes=nodes if nodes is not None else recorded_nodes(home),
        )

    @property
    def members(self) -> list[LocalBroker]:
        heap = self.heap or ("1g" if self.nodes == 1 else "512m")
        if self.nodes == 1:
            return [LocalBroker(home=self.home, port=self.port, heap=heap)]
        voters = tuple((i, self.port + 2 * (i - 1) + 1) for i in range(1, self.nodes + 1))
        cluster_id = self._cluster_id()
        return [
            LocalBroker(
                home=self.home / f"node-{i}",
                port=self.port + 2 * (i - 1),
                heap=heap,
                node_id=i,
                voters=voters,
                cluster_id=cluster_id,
            )
            for i in range(1, self.nodes + 1)
        ]

    def node(self, node_id: int) -> LocalBroker:
        if not 1 <= node_id <= self.nodes:
            raise BrokerSetupError(f"no node {node_id}: the local cluster in {self.home} has nodes 1 to {self.nodes}")
        return self.members[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.members)

    def _cluster_id(self) -> str:
        """One id for every node, made once and kept with the cluster."""
        path = self.home / "cluster.id"
        try:
            return path.read_text().strip()
        except OSError:
            self.home.mkdir(parents=True, exist_ok=True)
            cluster_id = new_cluster_id()
            path.write_text(cluster_id + "\n")
            return cluster_id

    def status(self) -> dict[int, BrokerStatus]:
        return {node.node_id: node.status() for node in self.members}

    def running(self) -> bool:
        return all(status is BrokerStatus.RUNNING for status in self.status().values())

    def start(self, timeout: float = START_TIMEOUT_S, *, secure: bool = False, tls: bool = False) -> bool:
        """Start every node that is not running, together, and wait until each serves; False if all
        were running already. A home started with another node count is refused, not mixed.
        ``secure`` and ``tls`` (one node only) as for :meth:`LocalBroker.start`."""
        if (secure or tls) and self.nodes > 1:
            raise BrokerSetupError(SECURE_CLUSTER_REFUSAL.format(nodes=self.nodes))
        recorded = recorded_nodes(self.home) if (self.home / NODES_FILE).exists() else None
        if (
            recorded is not None
            and recorded != self.nodes
            and any(s is not BrokerStatus.STOPPED for s in LocalCluster(self.home, self.port, recorded).status().values())
        ):
            raise BrokerSetupError(
                f"the local broker in {self.home} runs {recorded} node(s); stop it first "
                f"(`muse broker stop`) to start {self.nodes}"
            )
        if recorded is not None and recorded != self.nodes and (self.home / "data").exists() != (self.nodes == 1):
            raise BrokerSetupError(
                f"{self.home} holds a {recorded}-node broker's data; use another MUSE_HOME for {self.nodes} node(s), or delete it"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / NODES_FILE).write_text(f"{self.nodes}\n")
        started = []
        try:
            # A node that cannot launch (its port taken, say) stops the ones launched before it.
            for node in self.members:
                process = node.launch(secure=secure, tls=tls)
                if process is not None:
                    started.append((node, process))
            for node, process in started:
                node.wait_ready(process, timeout)
        except BrokerSetupError:
            self.stop()
            raise
        return bool(started)

    def restart_node(self, node_id: int, timeout: float = START_TIMEOUT_S) -> None:
        """Stop one node (SIGTERM, a controlled shutdown), start it again and wait until every
        partition's replicas are back in sync: one step of a rolling restart, after which the next
        node may go."""
        node = self.node(node_id)
        node.stop()
        node.start(timeout)
        self.wait_in_sync(timeout)

    def wait_in_sync(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until no partition is under-replicated (what an operator checks between two steps of
        a rolling restart); raises naming the partitions still behind."""
        from confluent_kafka.admin import AdminClient

        from muse_stream.clients.settings import admin_config

        login = self.members[0].admin_login()  # a secured (single) broker answers its admin only
        security = login.properties() if login else {}
        admin = AdminClient(admin_config(self.bootstrap, plaintext=True, log_level=0, **security))
        deadline = time.monotonic() + timeout
        behind: list[str] = []
        while time.monotonic() < deadline:
            try:
                metadata = admin.list_topics(timeout=5)
            except Exception:  # noqa: BLE001 - a node still starting: ask again
                time.sleep(0.5)
                continue
            behind = [
                f"{name}[{p.id}]"
                for name, topic in metadata.topics.items()
                for p in topic.partitions.values()
                if len(p.isrs) < len(p.replicas)
            ]
            if not behind and len(metadata.brokers) == self.nodes:
                return
            time.sleep(0.5)
        raise BrokerSetupError(
            f"{len(behind)} partitions still under-replicated after {timeout:.0f} s "
            f"(e.g. {behind[:3]}); check `muse broker status` and `muse broker logs`"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop every node this home started; False if none ran. All are signalled at once: one by
        one, the last nodes wait out their timeout for a quorum that has gone."""
        members = self.members
        for node in members:
            pid = node.running_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
        return any([node.stop(timeout) for node in members])

    def log_tail(self, lines: int = 40) -> str:
        if self.nodes == 1:
            return self.members[0].log_tail(lines)
        return "\n".join(f"== node {node.node_id} ({node.log_file}) ==\n{node.log_tail(lines)}" for node in self.members)


def recorded_nodes(home: Path) -> int:
    """How many nodes the broker in ``home`` was started with (1 if it never recorded it)."""
    try:
        return int((home / NODES_FILE).read_text().strip())
    except (OSError, ValueError):
        return 1


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
