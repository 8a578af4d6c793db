"""What the pipeline benchmarks (and the integration tests) share: deploy, produce, run workers, watch progress.

Everything talks to the broker named by ``MUSE_BOOTSTRAP`` (or the local one); every benchmark
works in a fresh namespace (:func:`bench_names`) and deletes its topics at the end
(:func:`delete_namespace`), so runs never see each other's records and the broker does not fill up.

Run as a module, it is the pass-through worker: the production :class:`Worker` loop (same consumer,
same transactional producer, same offsets-in-transaction commit) with a scorer that copies bytes,
which is the ceiling any scoring worker on this machine can reach::

    python -m muse_stream.bench.harness passthrough --namespace NS --worker-id ID
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.producing import produce_grouped
from muse_stream.clients.settings import consumer_config, producer_config
from muse_stream.config.deployment import (
    DeploymentConfig,
    IntentConfig,
    PredictorConfig,
    RouteConfig,
    TenantConfig,
)
from muse_stream.config.publisher import ConfigPublisher
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.errors import MuseError
from muse_stream.models import FileArtifactStore, ModelRegistry
from muse_stream.pipeline.scoring import (
    BatchOutcome,
    OutgoingRecord,
    SnapshotLike,
    SourceRecord,
)
from muse_stream.predictors import Predictor
from muse_stream.predictors.fitting import fit_predictor_spec
from muse_stream.synthetic import FEATURE_NAMES, generate_events, train_model
from muse_stream.topics import TopicNames

logger = logging.getLogger(__name__)


def bench_names(prefix: str = "bench") -> TopicNames:
    return TopicNames(f"{prefix}{uuid.uuid4().hex[:10]}")


# -- predictors and deployments --------------------------------------------------------------------

def train_predictor(store_dir: Path, *, name: str = "fraud", version: str = "1", n_trees: int = 20,
                    max_depth: int = 3, b: float = 0.2, seed: int = 7, missing_policy: str = "xgboost_missing",
                    n_train: int = 4000) -> Predictor:
    """A real predictor trained on synthetic data and registered in ``store_dir``."""
    X, y = generate_events(n_train, seed=seed)
    booster = train_model(X, y, n_trees=n_trees, max_depth=max_depth, negative_keep_fraction=b, seed=seed)
    store = FileArtifactStore(store_dir)
    record = ModelRegistry(store).register(bytes(booster.save_raw("json")), name=f"{name}-model", version=version, b=b)
    fit_X, _ = generate_events(4000, seed=seed + 1)
    spec = fit_predictor_spec(record, store, fit_X, name=name, version=version, missing_policy=missing_policy)  # type: ignore[arg-type]
    return Predictor.from_spec(spec, store)


def artifact_bytes(predictor: Predictor, store_dir: Path) -> dict[str, bytes]:
    """The model artifact a predictor runs, keyed by sha256, as the config publisher takes it."""
    sha256 = predictor.spec.model.sha256
    return {sha256: FileArtifactStore(store_dir).get(sha256)}


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
    specs = names.internal_topic_specs()
    for tenant in tenants:
        specs += names.tenant_topic_specs(tenant, partitions)
    TopicAdmin(bootstrap).ensure(specs)


def delete_namespace(bootstrap: str, names: TopicNames, *extra_prefixes: str) -> int:
    """Delete every topic of a namespace (and of the given extra prefixes); returns how many."""
    admin = TopicAdmin(bootstrap)
    prefixes = (f"{names.namespace}.", *extra_prefixes)
    doomed = [t for t in admin.existing_topics() if t.startswith(prefixes)]
    admin.delete(doomed)
    return len(doomed)


# -- producing ---------------------------------------------------------------------------------------

def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]], **config: Any) -> int:
    """Produce (key, value) pairs with an idempotent producer and wait until all are acknowledged."""
    return produce_to(bootstrap, ((topic, key, value) for key, value in records), **config)


def produce_to(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]], **config: Any) -> int:
    """Produce (topic, key, value) triples with one idempotent producer; wait until all are acknowledged."""
    producer = Producer(producer_config(bootstrap, **config))
    failures: list[str] = []

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    count = produce_grouped(producer, records, on_delivery=on_delivery)
    if producer.flush(60) != 0:
        raise MuseError("records still unacknowledged after 60 s")
    if failures:
        raise MuseError(f"producing failed: {failures[:3]}")
    return count


def compact_features(n: int, *, seed: int) -> list[bytes]:
    """``n`` feature objects as JSON, the model's feature names with values rounded to 4 significant
    digits (binary features as 0/1): what a compact but honest client sends."""
    X, _ = generate_events(n, seed=seed)
    out = []
    for row in X.tolist():
        parts = []
        for name, value in zip(FEATURE_NAMES, row, strict=True):
            text = "0" if value == 0 else "1" if value == 1 else f"{value:.4g}"
            parts.append(f'"{name}":{text}')
        out.append(("{" + ",".join(parts) + "}").encode())
    return out


def event_payloads(n: int, *, seed: int = 0, prefix: str = "e", pool: int = 20_000) -> list[bytes]:
    """``n`` input events with unique ids; features cycle through a pool of ``pool`` distinct rows."""
    features = compact_features(min(n, pool), seed=seed)
    return [b'{"event_id":"%s%d","features":%s}' % (prefix.encode(), i, features[i % len(features)])
            for i in range(n)]


# -- worker processes --------------------------------------------------------------------------------

class WorkerProcess:
    """`muse worker` (or another worker entry point) in its own process, so it can be SIGKILLed like a crash."""

    def __init__(self, bootstrap: str, namespace: str, worker_id: str, log_dir: Path, *extra: str,
                 entry: Sequence[str] = ("muse_stream.cli", "worker")) -> None:
        self.args = [sys.executable, "-m", *entry, "--namespace", namespace, "--worker-id", worker_id, *extra]
        self.env = {**os.environ, "MUSE_BOOTSTRAP": bootstrap}
        self.log_path = log_dir / f"worker-{worker_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log_file.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def rss_kib(pid: int) -> dict[str, int]:
    """Resident set size now (VmRSS) and at its peak (VmHWM), KiB, from /proc."""
    figures: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0])
    return figures


# -- progress ---------------------------------------------------------------------------------------

@dataclass
class Progress:
    """Completed-event counts sampled over time; the rate is taken from first to last completion."""

    total: int
    first_at: float | None = None
    first_count: int = 0
    done_at: float | None = None
    peak_rss_kib: int = 0

    @property
    def rate(self) -> float:
        if self.first_at is None or self.done_at is None or self.done_at <= self.first_at:
            return float("nan")
        return (self.total - self.first_count) / (self.done_at - self.first_at)

    @property
    def seconds(self) -> float:
        return (self.done_at or float("nan")) - (self.first_at or float("nan"))


def committed_counter(bootstrap: str, group_id: str, partitions: Sequence[tuple[str, int]]) -> Callable[[], int]:
    """Events whose results are committed: the sum of the group's committed offsets (results and
    offsets commit in one transaction, so this is exactly what read_committed readers can see)."""
    consumer = Consumer(consumer_config(bootstrap, group_id))
    tps = [TopicPartition(t, p) for t, p in partitions]

    def count() -> int:
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def high_watermark_counter(bootstrap: str, partitions: Sequence[tuple[str, int]]) -> Callable[[], int]:
    """Records in non-transactional topics: the sum of their high watermarks."""
    consumer = Consumer(consumer_config(bootstrap, f"muse-bench-{uuid.uuid4().hex}", **{"isolation.level": "read_uncommitted"}))

    def count() -> int:
        return sum(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)[1]
                   for t, p in partitions)

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def wait_for(count: Callable[[], int], total: int, *, timeout: float, pid: int | None = None,
             alive: Callable[[], bool] = lambda: True, interval: float = 0.02) -> Progress:
    """Poll ``count`` until it reaches ``total``; note when the first and the last completion showed."""
    progress = Progress(total)
    deadline = time.monotonic() + timeout
    last_rss = 0.0
    try:
        while time.monotonic() < deadline:
            done = count()
            now = time.monotonic()
            if done > 0 and progress.first_at is None:
                progress.first_at, progress.first_count = now, done
            if pid is not None and now - last_rss > 0.5:
                try:
                    progress.peak_rss_kib = max(progress.peak_rss_kib, rss_kib(pid).get("VmHWM", 0))
                except OSError:
                    pass
                last_rss = now
            if done >= total:
                progress.done_at = now
                break
            if not alive():
                raise MuseError("the worker under test exited before finishing")
            time.sleep(interval)
        else:
            raise MuseError(f"only {count()} of {total} events completed within {timeout:.0f} s")
    finally:
        close = getattr(count, "close", None)
        if close is not None:
            close()
    if pid is not None:
        try:
            progress.peak_rss_kib = max(progress.peak_rss_kib, rss_kib(pid).get("VmHWM", 0))
        except OSError:
            pass
    return progress



def time_workers(processes: Sequence[WorkerProcess], count: Callable[[], int], total: int, *, timeout: float,
                 interval: float = 0.02, profile: Path | None = None) -> Progress:
    """Start the processes, poll ``count`` until ``total``, stop them. The progress's peak RSS is the
    highest VmHWM among them; ``profile`` samples the first with py-spy."""
    for process in processes:
        process.start()
    profiler = Profiler(processes[0].pid, profile) if profile else None
    try:
        progress = wait_for(count, total, timeout=timeout, pid=processes[0].pid,
                            alive=lambda: all(p.alive() for p in processes), interval=interval)
        progress.peak_rss_kib = max([progress.peak_rss_kib, *(rss_kib(p.pid).get("VmHWM", 0) for p in processes)])
        if math.isnan(progress.rate):
            raise MuseError(f"all {total:,} events completed between two progress samples ({interval} s apart), "
                            "too fast to time: give the benchmark more events (--events)")
        return progress
    except Exception:
        for process in processes:
            print(process.log_tail(30))
        raise
    finally:
        if profiler is not None:
            profiler.stop()
        for process in processes:
            process.stop()

# -- the pass-through worker -------------------------------------------------------------------------

class PassthroughScorer:
    """Copies every input record's bytes to its tenant's output topic: no parsing, no scoring."""

    def __init__(self, names: TopicNames) -> None:
        self.names = names
        self._outputs: dict[str, str] = {}

    def score(self, records: Sequence[SourceRecord], snapshot: SnapshotLike) -> BatchOutcome:
        outputs = self._outputs
        results = []
        for record in records:
            topic = outputs.get(record.tenant)
            if topic is None:
                topic = outputs[record.tenant] = self.names.output_topic(record.tenant)
            results.append(OutgoingRecord(topic, record.key, record.value or b""))
        return BatchOutcome(results=results)

    def counters(self) -> dict[str, int]:
        """None: it has no shadows and nothing to skip."""
        return {}


def _passthrough_main(argv: Sequence[str]) -> int:
    from muse_stream.broker import command_bootstrap
    from muse_stream.pipeline.worker import Worker, WorkerSettings

    parser = argparse.ArgumentParser(prog="python -m muse_stream.bench.harness passthrough")
    parser.add_argument("mode", choices=["passthrough"])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--commit-interval-ms", type=int, default=WorkerSettings.commit_interval_ms)
    parser.add_argument("--max-batch", type=int, default=WorkerSettings.max_batch)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = TopicNames(args.namespace)
    settings = WorkerSettings(bootstrap=command_bootstrap(), names=names, worker_id=args.worker_id,
                              commit_interval_ms=args.commit_interval_ms, max_batch=args.max_batch)
    no_config = ConfigSnapshot.empty()  # the pass-through routes nothing
    worker = Worker(settings, lambda: no_config, PassthroughScorer(names))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    logging.info("pass-through worker stopped: %s", worker.run().line())
    return 0


# -- profiles ----------------------------------------------------------------------------------------

class Profiler:
    """py-spy sampling a running process (``pip install py-spy``) into a raw collapsed-stack file."""

    def __init__(self, pid: int, output: Path, *, rate: int = 200) -> None:
        executable = Path(sys.executable).with_name("py-spy")
        self.output = output
        self.process = subprocess.Popen(
            [str(executable if executable.exists() else "py-spy"), "record", "--pid", str(pid), "--format", "raw",
             "--output", str(output), "--rate", str(rate), "--nonblocking", "--idle"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(30)


def profile_summary(path: Path, *, root: str = "Worker.run (muse_stream/pipeline/worker.py", top: int = 24) -> list[tuple[str, float, float]]:
    """(function, inclusive share, self share) of the samples under ``root``, largest inclusive first."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        starts = [i for i, frame in enumerate(frames) if frame.startswith(root)]
        if not starts:
            continue
        frames = frames[starts[0]:]
        count = int(count_text)
        total += count
        names = [frame.split(":")[0].replace(" (", " ").rstrip(")") for frame in frames]
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + count
        own[names[-1]] = own.get(names[-1], 0) + count
    ranked = sorted(inclusive, key=inclusive.__getitem__, reverse=True)
    return [(name, inclusive[name] / total, own.get(name, 0) / total) for name in ranked[:top]] if total else []


if __name__ == "__main__":
    sys.exit(_passthrough_main(sys.argv[1:]))
