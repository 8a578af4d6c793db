"""``muse worker``: one exactly-once scoring worker; run as many as you like in one group."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import TYPE_CHECKING

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option, positive_int
from muse_stream.defaults import COMMIT_INTERVAL_MS, CONTENDED_BATCH, MAX_BATCH, OUTAGE_LIMIT_MS, SHADOW_BUDGET_MS
from muse_stream.errors import MuseError
from muse_stream.topics import TopicNames

if TYPE_CHECKING:
    from muse_stream.config.watcher import ConfigWatcher
    from muse_stream.pipeline.metrics import WorkerMetrics
    from muse_stream.pipeline.worker import Worker

CONFIG_WAIT_S = 60.0

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser("worker", help="score every tenant's input topic, exactly once")
    add_namespace_option(worker)
    worker.add_argument(
        "--worker-id",
        required=True,
        help="stable id, unique among running workers (e.g. w1, w2): it is the static group "
        "membership and the transactional.id, so a restart with the same id takes over at once "
        "and two live workers with one id fence each other",
    )
    worker.add_argument(
        "--commit-interval-ms",
        type=int,
        default=COMMIT_INTERVAL_MS,
        help="how long a batch gathers before its transaction commits (default: %(default)s)",
    )
    worker.add_argument(
        "--max-batch",
        type=positive_int,
        default=MAX_BATCH,
        help="most records per transaction (default: %(default)s)",
    )
    worker.add_argument(
        "--contended-batch",
        type=positive_int,
        default=CONTENDED_BATCH,
        help="most records per transaction while more than one tenant has records: how long a quiet "
        "tenant's events wait behind a flooding tenant's (default: %(default)s)",
    )
    worker.add_argument(
        "--no-fair-share",
        dest="fair_share",
        action="store_false",
        help="let partitions fill batches in the order librdkafka fetched them, so one tenant's backlog "
        "delays every other tenant (only to measure what fair shares prevent)",
    )
    worker.add_argument(
        "--shadow-budget-ms",
        type=float,
        default=SHADOW_BUDGET_MS,
        help="a shadow slower than this per batch is skipped for a while (default: %(default)s)",
    )
    worker.add_argument(
        "--outage-limit-s",
        type=float,
        default=OUTAGE_LIMIT_MS / 1000,
        help="while brokers are down or unreachable the worker keeps recreating its clients; it stops "
        "with an error once nothing has committed for this long (default: %(default)s)",
    )
    worker.add_argument(
        "--startup-wait-s",
        type=float,
        default=0.0,
        help="how long a starting worker waits for an unreachable cluster (default: %(default)s, fail "
        "at once: most often the address is wrong); give it under a supervisor that restarts "
        "workers during broker outages",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on http://ADDRESS:PORT/metrics (0: any free port, logged)",
    )
    worker.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the metrics endpoint listens on (default: %(default)s; 0.0.0.0 for every interface)",
    )
    worker.set_defaults(handler=_run, default_log_level="info")


def _reach_cluster(wait_s: float) -> str:
    """The bootstrap address once the cluster answers. By default a worker that cannot reach it at
    start fails at once (most often a wrong address); one restarted by a supervisor while brokers
    are away may wait ``wait_s`` for them instead."""
    from muse_stream.clients.admin import ClusterUnreachable

    started = time.monotonic()
    while True:
        try:
            return command_bootstrap()
        except ClusterUnreachable as error:
            if time.monotonic() - started >= wait_s:
                raise
            logger.warning("%s; retrying for up to %g s (--startup-wait-s)", error, wait_s)
            time.sleep(2.0)


def _run(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.config.artifact_topic import KafkaArtifactStore
    from muse_stream.config.watcher import ConfigWatcher
    from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard
    from muse_stream.pipeline.worker import Worker, WorkerSettings

    bootstrap = _reach_cluster(args.startup_wait_s)
    names = TopicNames(args.namespace)
    TopicAdmin(bootstrap).ensure(names.worker_internal_topic_specs())
    watcher = ConfigWatcher(bootstrap, names, artifact_store=KafkaArtifactStore(bootstrap, names))
    watcher.start()
    try:
        snapshot = watcher.wait_for_version(1, timeout=CONFIG_WAIT_S)
        logger.info("config version %d in force", snapshot.version)
        settings = WorkerSettings(
            bootstrap=bootstrap,
            names=names,
            worker_id=args.worker_id,
            commit_interval_ms=args.commit_interval_ms,
            max_batch=args.max_batch,
            contended_batch=args.contended_batch,
            fair_share=args.fair_share,
            outage_limit_ms=int(args.outage_limit_s * 1000),
        )
        worker = Worker(
            settings, watcher.live_snapshot, BatchScorer(names, shadow_guard=ShadowGuard(budget_ms=args.shadow_budget_ms))
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        metrics = _serve_metrics(args, worker, watcher) if args.metrics_port is not None else None
        try:
            stats = worker.run()
        finally:
            if metrics is not None:
                metrics.close()
        logger.info("worker %s stopped: %s", args.worker_id, stats.line())
    finally:
        watcher.stop()
    return 0


def _serve_metrics(args: argparse.Namespace, worker: Worker, watcher: ConfigWatcher) -> WorkerMetrics:
    from muse_stream.pipeline.metrics import PartitionLag, WorkerMetrics

    settings = worker.settings
    lag = PartitionLag(settings.bootstrap, settings.group_id, settings.names.input_topic_regex)
    metrics = WorkerMetrics(
        settings.names, aborts=lambda: worker.stats.aborts, config_version=lambda: watcher.live_snapshot().version, lag=lag
    )
    worker.on_batch = metrics.record_batch
    try:
        port = metrics.serve(args.metrics_port, args.metrics_address)
    except OSError as error:
        lag.close()
        raise MuseError(
            f"cannot serve metrics on {args.metrics_address}:{args.metrics_port}: {error.strerror}; "
            "choose another --metrics-port (0 picks a free one)"
        ) from error
    logger.info("metrics on http://%s:%d/metrics", args.metrics_address, port)
    return metrics
