"""A single-node Apache Kafka 4.x in KRaft combined (broker + controller) mode on 127.0.0.1.

One directory holds everything about one broker: its properties, data, pid file and log. The pid
file records the process's start time as well, so `stop` never signals a recycled pid.
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


def server_properties(
    *, port: int, controller_port: int, data_dir: Path, admin: ScramLogin | None = None, tls: BrokerTls | None = None
) -> str:
    """One-node settings under which transactions and consumer groups work; with ``admin``, the
    secured broker of :func:`secure_settings`."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
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
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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


def free_port_pair(first: int = 29300, last: int = 29900) -> int:
    """A port p with p and p+1 free on 127.0.0.1: a broker's client and controller listeners.

    The search starts at a random pair: test sessions started side by side would otherwise all
    pick the first free pair, and all but one broker would fail to bind it."""
    pairs = list(range(first, last, 2))
    start = random.randrange(len(pairs))
    for port in pairs[start:] + pairs[:start]:
        if port_is_free(port) and port_is_free(port + 1):
            return port
    raise BrokerSetupError(f"no two adjacent free ports between {first} and {last} on 127.0.0.1; free some or set MUSE_BOOTSTRAP")


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
    """A local broker rooted at `home`; every method is safe to call in any state."""

    home: Path
    port: int = DEFAULT_PORT
    version: str = KAFKA_VERSION
    heap: str = "1g"

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
        formatted = (self.data_dir / "meta.properties").exists()
        if formatted and secure and not self.secure:
            raise BrokerSetupError(
                f"the broker in {self.home} was formatted without --secure and keeps its data; to secure it, "
                f"stop it and delete {self.home}, or use another MUSE_HOME for the secured broker"
            )
        if self.status() is BrokerStatus.RUNNING:
            return False
        if not formatted and secure:
            self._make_credentials(tls)
        self.pid_file.unlink(missing_ok=True)
        for port, role in ((self.port, "client"), (self.controller_port, "controller")):
            if not port_is_free(port):
                raise BrokerSetupError(
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerSetupError(
                    f"the Kafka broker exited with code {process.returncode} while starting; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if self.is_ready(timeout=1.0):
                return True
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
                admin=login,
                tls=self.tls if login and login.ca_file else None,
            ),
        )
        (self.home / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)

    def _format_storage(self, java: str, libs: Path) -> None:
        """Format the KRaft log directory once; an existing one keeps its data and cluster id."""
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        result = subprocess.run(
            [
                java,
                *TOOL_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
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


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
