"""``muse bench soak``: steady load over 3 tenants and 2 workers on a local cluster while faults are
injected at random (fault schedule: `bench/faults.py`), then a verifier reads every output and DLQ
topic read_committed and judges exactly-once (`bench/exactly_once.py`).

The soak starts its own throwaway cluster (it kills and pauses nodes, so never yours). Connections
are cut with the kernel's socket destroy (`ss -K`) on the worker's TCP sockets to the brokers, not
with a proxy: brokers advertise their own addresses, so a proxy in front of the bootstrap address
would see only the first connection of each client.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, Producer

from muse_stream.bench.exactly_once import Outcome, Verdict, verify
from muse_stream.bench.faults import ALL_FAULTS, Fault, FaultKind, fault_schedule, parse_faults
from muse_stream.bench.throughput import bench_predictor
from muse_stream.bench.workers import WorkerProcess
from muse_stream.bench.workload import bench_names, compact_features
from muse_stream.broker.local import LocalCluster, free_port_pair
from muse_stream.clients.admin import TopicAdmin, ensure_tenant_topics
from muse_stream.clients.reading import good_batch
from muse_stream.clients.settings import consumer_config, producer_config
from muse_stream.defaults import SOAK_MEAN_GAP_S, SOAK_PARTITIONS, SOAK_PAUSE_S, SOAK_RATE, SOAK_SEED
from muse_stream.errors import MuseError
from muse_stream.synthetic_deployment import deployment, publish
from muse_stream.topics import TopicNames

TENANTS = ("bank-a", "bank-b", "bank-c")
WORKERS = 2
# How long a restarted node may take to serve again: on a busy 2-core machine with the other nodes
# and the workers running, a node once needed more than the usual 60 s.
NODE_START_TIMEOUT_S = 180.0


@dataclass
class SoakSettings:
    minutes: float
    faults: tuple[FaultKind, ...] = ALL_FAULTS
    rate: int = SOAK_RATE  # events/s over all tenants
    nodes: int = 3
    partitions: int = SOAK_PARTITIONS
    seed: int = SOAK_SEED
    mean_gap_s: float = SOAK_MEAN_GAP_S
    pause_s: float = SOAK_PAUSE_S  # past the workers' 10 s session and transaction timeouts: a zombie
    drain_timeout_s: float = 300.0
    warmup_s: float = 10.0  # no faults in the first and last seconds: start healthy, end with time to drain
    cooldown_s: float = 20.0
    log_dir: Path | None = None


@dataclass
class SoakReport:
    verdict: Verdict
    injected: list[tuple[float, Fault]]
    seconds: float
    worker_exits: list[str] = field(default_factory=list)  # exits the soak did not cause
    unfinished: list[str] = field(default_factory=list)  # faults whose recovery step failed

    def table(self) -> str:
        table = verdict_table(self.verdict, self.injected, seconds=self.seconds)
        exits = f"worker exits not caused by a fault: {len(self.worker_exits)}"
        unfinished = f"faults begun but not finished (not counted above): {len(self.unfinished)}"
        return (
            table
            + "\n"
            + exits
            + "".join(f"\n  {line}" for line in self.worker_exits)
            + "\n"
            + unfinished
            + "".join(f"\n  {line}" for line in self.unfinished)
        )


class SteadyProducer:
    """Events at a steady rate, round-robin over the tenants, keyed by event id; an event counts as
    produced once the broker acknowledged it (idempotent, so retries never duplicate it)."""

    def __init__(self, bootstrap: str, names: TopicNames, rate: int, seed: int) -> None:
        self.names = names
        self.rate = rate
        self.acknowledged: list[str] = []
        self.failed = 0
        self._features = compact_features(5000, seed=seed)
        self._producer = Producer(producer_config(bootstrap, **{"message.timeout.ms": 600_000, "linger.ms": 20}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)

    def start(self) -> SteadyProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._producer.flush(600)

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is None:
            self.acknowledged.append(message.key().decode())  # type: ignore[attr-defined]
        else:
            self.failed += 1

    def _run(self) -> None:
        tick = 0.05
        sent = 0
        started = time.monotonic()
        topics = [self.names.input_topic(t) for t in TENANTS]
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while sent < due:
                event_id = f"ev-{sent}"
                value = b'{"event_id":"%s","features":%s}' % (event_id.encode(), self._features[sent % len(self._features)])
                try:
                    self._producer.produce(
                        topics[sent % len(topics)], key=event_id.encode(), value=value, on_delivery=self._delivered
                    )
                except BufferError:
                    self._producer.poll(0.1)
                    continue
                sent += 1
            self._producer.poll(0)
            time.sleep(tick)


def worker_connections(pid: int, ports: set[int]) -> list[int]:
    """Local ports of the process's established TCP connections to 127.0.0.1 on ``ports``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    local_ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if fields[3] == "01" and fields[9] in inodes and remote_port in ports:
            local_ports.append(int(fields[1].split(":")[1], 16))
    return local_ports


def cut_connections(pid: int, ports: set[int]) -> int:
    """Abort the process's TCP connections to the brokers (ss -K, the kernel's socket destroy)."""
    cut = 0
    for port in worker_connections(pid, ports):
        result = subprocess.run(
            ["ss", "-K", "-t", "src", "127.0.0.1", "sport", "=", f":{port}"], capture_output=True, text=True, check=False
        )
        cut += result.returncode == 0
    return cut


class FaultInjector:
    """Carries out a fault schedule against the workers and the cluster, logging what it did and when."""

    def __init__(
        self,
        cluster: LocalCluster,
        workers: Sequence[WorkerProcess],
        change_config: Callable[[], int],
        started: float,
        say: Callable[[str], None],
    ) -> None:
        self.cluster = cluster
        self.workers = workers
        self.change_config = change_config
        self.started = started
        self.say = say
        self.injected: list[tuple[float, Fault]] = []
        self.unfinished: list[str] = []  # faults begun whose recovery step failed (e.g. a node that did not come back)
        self.exits: list[str] = []
        self._expected_dead: set[int] = set()  # reported already, or being killed and restarted by a fault
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run(self, plan: Sequence[Fault]) -> None:
        for fault in plan:
            while not self._stop.is_set() and time.monotonic() - self.started < fault.at_s:
                self.check_workers()
                time.sleep(0.2)
            if self._stop.is_set():
                return
            at = time.monotonic() - self.started
            self.say(f"t={at:6.1f} s  {fault.describe()}")
            try:
                self.inject(fault)
            except Exception as error:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
                reason = str(error).splitlines()[0]
                self.say(f"           could not finish {fault.kind.value}: {reason}")
                self.unfinished.append(f"t={at:.1f} s {fault.describe()}: {reason[:200]}")
                continue
            self.injected.append((round(at, 1), fault))

    def stop(self) -> None:
        self._stop.set()

    def check_workers(self) -> None:
        with self._lock:
            for index, worker in enumerate(self.workers, start=1):
                if index not in self._expected_dead and not worker.alive() and worker.process is not None:
                    self.exits.append(f"worker {index} exited with code {worker.process.returncode}: {worker.log_tail(1)[-300:]}")
                    self._expected_dead.add(index)  # reported once; never restarted by hand

    def inject(self, fault: Fault) -> None:
        kind = fault.kind
        if kind is FaultKind.WORKER_KILL:
            worker = self.workers[fault.target - 1]
            with self._lock:
                if fault.target in self._expected_dead:
                    return  # it exited on its own, and stays down
                self._expected_dead.add(fault.target)
                worker.kill()
            time.sleep(fault.hold_s)
            with self._lock:
                worker.start()
                self._expected_dead.discard(fault.target)
        elif kind is FaultKind.WORKER_PAUSE:
            self._pause(self.workers[fault.target - 1].pid, fault.hold_s)
        elif kind is FaultKind.CUT_CONNECTIONS:
            ports = {node.port for node in self.cluster.members}
            cut = cut_connections(self.workers[fault.target - 1].pid, ports)
            self.say(f"           cut {cut} connections")
        elif kind is FaultKind.BROKER_KILL:
            node = self.cluster.node(fault.target)
            node.kill()
            time.sleep(fault.hold_s)
            node.start(NODE_START_TIMEOUT_S)
            if self.cluster.nodes > 1:
                self.cluster.wait_in_sync(NODE_START_TIMEOUT_S)
        elif kind is FaultKind.BROKER_PAUSE:
            pid = self.cluster.node(fault.target).running_pid()
            if pid is not None:
                self._pause(pid, fault.hold_s)
        elif kind is FaultKind.ROLLING_RESTART:
            for node in self.cluster.members:
                self.cluster.restart_node(node.node_id, NODE_START_TIMEOUT_S)
        elif kind is FaultKind.CONFIG_CHANGE:
            self.say(f"           config version {self.change_config()} published")

    def _pause(self, pid: int, seconds: float) -> None:
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)


def read_outcomes(
    bootstrap: str,
    names: TopicNames,
    expect: set[str],
    *,
    timeout: float,
    settle: float = 5.0,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """Every record of every tenant's output and DLQ topic, read_committed, in offset order per
    partition: until each expected event has an outcome and ``settle`` seconds pass with nothing
    new (so duplicates arriving late are seen too), or until ``timeout``."""
    topics = [t for tenant in TENANTS for t in (names.output_topic(tenant), names.dlq_topic(tenant))]
    consumer = Consumer(consumer_config(bootstrap, f"muse-soak-verifier-{time.time_ns()}"))
    consumer.subscribe(topics)
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    last_said = 0.0
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.5)
            for message in good_batch([m for m in batch if m.error() is None]):
                value = message.value()
                if value is None:  # no record muse writes is a tombstone
                    continue
                outcome = _outcome(message.topic(), message.partition(), message.key(), value)
                outcomes.append(outcome)
                seen.add(outcome.event_id)
            now = time.monotonic()
            if batch:
                last = now
            elif expect <= seen and now - last >= settle:
                break
            if now - last_said > 15:
                say(f"verifier: {len(seen & expect):,} of {len(expect):,} events have an outcome")
                last_said = now
    finally:
        consumer.close()
    return outcomes


def _outcome(topic: str, partition: int, key: bytes | None, value: bytes) -> Outcome:
    body = orjson.loads(value)
    if topic.endswith(".dlq"):  # a dead letter carries the original record
        original = body.get("original_value_b64")
        try:
            event_id = orjson.loads(base64.b64decode(original))["event_id"] if original else None
        except (ValueError, KeyError, TypeError):
            event_id = None
        if event_id is None:
            event_id = base64.b64decode(body["original_key_b64"]).decode() if body.get("original_key_b64") else "?"
        return Outcome(topic, partition, event_id, int(body["config_version"]))
    return Outcome(topic, partition, body["event_id"], int(body["config_version"]))


def _wait_until_consuming(worker: WorkerProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while "assigned [" not in worker.log_tail(400):
        if not worker.alive() or time.monotonic() > deadline:
            raise MuseError(
                f"worker {worker.log_path.name} did not start consuming within {timeout:.0f} s; "
                f"its log ends:\n{worker.log_tail(20)}"
            )
        time.sleep(0.2)


def run_soak(settings: SoakSettings, say: Callable[[str], None] = print) -> SoakReport:
    duration_s = settings.minutes * 60
    home = Path(tempfile.mkdtemp(prefix="muse-soak-"))
    log_dir = settings.log_dir or home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(home=home / "cluster", port=free_port_pair(nodes=settings.nodes), nodes=settings.nodes)
    workers: list[WorkerProcess] = []
    try:
        began = time.monotonic()
        cluster.start()
        bootstrap = cluster.bootstrap
        say(
            f"cluster of {settings.nodes} node(s) up in {time.monotonic() - began:.0f} s; bootstrap {bootstrap}; "
            f"logs in {log_dir}"
        )
        names = bench_names("soak")
        ensure_tenant_topics(TopicAdmin(bootstrap), names, TENANTS, partitions=settings.partitions)
        store = home / "models"
        predictors = {
            "card-v1": bench_predictor(store, trees=50, depth=4, seed=1, name="card", version="1"),
            "card-v2": bench_predictor(store, trees=50, depth=4, seed=2, name="card", version="2"),
        }
        live = ["card-v1"]

        def change_config() -> int:
            live[0] = "card-v2" if live[0] == "card-v1" else "card-v1"
            config = deployment(TENANTS, predictors, {(t, "card-fraud"): (live[0], ()) for t in TENANTS})
            return publish(bootstrap, names, config, predictors, store)

        version = change_config()
        say(f"config version {version} live; {len(TENANTS)} tenants x {settings.partitions} partitions")
        workers = [
            WorkerProcess(
                bootstrap, names.namespace, f"w{i}", log_dir, "--outage-limit-s", "600", "--startup-wait-s", "300"
            ).start()
            for i in range(1, WORKERS + 1)
        ]
        plan = fault_schedule(
            settings.seed,
            duration_s,
            settings.faults,
            workers=WORKERS,
            nodes=settings.nodes,
            mean_gap_s=settings.mean_gap_s,
            pause_s=settings.pause_s,
            warmup_s=settings.warmup_s,
            cooldown_s=settings.cooldown_s,
        )
        for worker in workers:
            _wait_until_consuming(worker)
        say(f"{len(plan)} faults planned over {duration_s:.0f} s at {settings.rate:,} events/s")
        started = time.monotonic()
        producer = SteadyProducer(bootstrap, names, settings.rate, settings.seed).start()
        injector = FaultInjector(cluster, workers, change_config, started, say)
        faults = threading.Thread(target=injector.run, args=(plan,), name="soak-faults", daemon=True)
        faults.start()
        while time.monotonic() - started < duration_s:
            injector.check_workers()
            time.sleep(1)
        injector.stop()
        faults.join()
        producer.stop()
        seconds = time.monotonic() - started
        say(
            f"load stopped after {seconds:.0f} s: {len(producer.acknowledged):,} events acknowledged, "
            f"{producer.failed} refused; verifying"
        )
        produced = set(producer.acknowledged)
        outcomes = read_outcomes(bootstrap, names, produced, timeout=settings.drain_timeout_s, say=say)
        injector.check_workers()
        return SoakReport(verify(produced, outcomes), injector.injected, seconds, injector.exits, injector.unfinished)
    finally:
        for worker in workers:
            if worker.process is not None:
                worker.stop()
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)  # --keep-logs puts the logs outside it


def handle(args: argparse.Namespace) -> int:
    try:
        faults = parse_faults(args.faults)
    except ValueError as error:
        raise MuseError(str(error)) from None
    settings = SoakSettings(
        minutes=args.minutes,
        faults=faults,
        rate=args.rate,
        nodes=args.nodes,
        partitions=args.partitions,
        seed=args.seed,
        mean_gap_s=args.mean_gap_s,
        pause_s=args.pause_s,
        log_dir=args.keep_logs,
    )
    report = run_soak(settings, say=lambda line: print(line, flush=True))
    print(report.table())
    return 0 if report.verdict.ok and not report.worker_exits else 1


def verdict_table(verdict: Verdict, faults: Sequence[tuple[float, Fault]], *, seconds: float) -> str:
    """The table `muse bench soak` prints: the figures, then each fault injected and when."""
    rows = [
        ("events produced", f"{verdict.produced:,}"),
        ("results", f"{verdict.results:,}"),
        ("dead letters", f"{verdict.dead_letters:,}"),
        ("lost", f"{len(verdict.lost):,}"),
        ("duplicated", f"{len(verdict.duplicated):,}"),
        ("outcomes of unknown events", f"{len(verdict.unexpected):,}"),
        ("config version regressions", f"{len(verdict.regressions):,}"),
        ("faults injected", f"{len(faults)}"),
        ("duration", f"{seconds:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value:>12}" for name, value in rows]
    kinds = Counter(fault.kind.value for _, fault in faults)
    if kinds:
        lines.append("faults by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    lines += [f"  t={at:7.1f} s  {fault.describe()}" for at, fault in faults]
    for what, items in (("lost", verdict.lost), ("duplicated", list(verdict.duplicated)), ("regressions", verdict.regressions)):
        if items:
            lines.append(f"first {what}: {', '.join(items[:5])}")
    lines.append("verdict: " + ("OK, exactly once" if verdict.ok else "FAILED"))
    return "\n".join(lines)
