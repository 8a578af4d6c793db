"""``muse bench replay``: events/s of ``muse replay`` from Kafka to Parquet for one config on one
process, next to the live exactly-once worker and bare ``Booster.inplace_predict`` in the same run.

A backlog of ``--events`` input events (one tenant, the throughput benchmark's model and events,
produced in chunks so the benchmark itself stays small) is replayed with the live config by a fresh
process (spawned, so its peak RSS is the replay's own: VmHWM of that process, imports
included); the replay is timed from its first read to its last write, as the worker is timed
from its first to its last event (the whole call, with config, model and labels loading, is
printed beside it). Then a worker drains the same backlog (its group is its own,
so the replay did not move it). Two ceilings close the table, on the first 200,000 events: the
workers' scoring code alone (``BatchScorer`` as a replay runs it, on records already in memory: decode,
checks, routing, matrix, prediction, transforms; no Kafka, no Parquet), which no replay that runs
the workers' code can beat, and bare XGBoost on the ready matrix.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from muse_stream.bench.progress import committed_counter
from muse_stream.bench.replay_process import replay_live
from muse_stream.bench.throughput import (
    TENANT,
    Run,
    bare_xgboost,
    bench_predictor,
    deploy_single_tenant,
    produce_backlog,
)
from muse_stream.bench.workers import WorkerProcess, time_workers
from muse_stream.bench.workload import bench_names, event_payloads
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.config.snapshot import ConfigSnapshot
from muse_stream.errors import MuseError
from muse_stream.pipeline.scoring import BatchScorer, ShadowGuard, SourceRecord
from muse_stream.predictors.predictor import Predictor
from muse_stream.synthetic_deployment import deployment
from muse_stream.topics import TopicNames

TARGET_EVENTS_PER_S = 150_000
TARGET_WORKER_RATIO = 2.0
TARGET_PEAK_RSS_MIB = 600
PRODUCE_CHUNK = 200_000
BARE_EVENTS = 200_000


def time_replay(bootstrap: str, names: TopicNames, out: Path, batch_size: int) -> tuple[Run, int, float]:
    """Run one replay in a spawned process: its Run (reading, scoring and writing; peak RSS of the
    process), the events it read and the seconds of the whole call (configs, models, labels too)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=replay_live, args=(bootstrap, names.namespace, TENANT, str(out), batch_size, send))
    child.start()
    send.close()
    try:
        total, seconds, events, peak_kib = receive.recv()
    except EOFError:
        child.join()
        raise MuseError(
            f"the replay process of {names.namespace} exited with code {child.exitcode} before reporting (its error is above)"
        ) from None
    child.join()
    return Run("muse replay (Kafka -> Parquet, 1 config, 1 process)", events / seconds, seconds, peak_kib / 1024), events, total


def bare_scoring(names: TopicNames, predictor: Predictor, payloads: list[bytes], batch: int, repetitions: int = 3) -> Run:
    """The workers' scoring code as a replay runs it (no result records: a listener takes the
    scores), on records already in memory; the median of ``repetitions`` passes."""
    snapshot = ConfigSnapshot(
        1, deployment([TENANT], {"live": predictor}, {(TENANT, "card-fraud"): ("live", ())}), {"live": predictor}
    )
    topic = names.input_topic(TENANT)
    records = [SourceRecord(TENANT, topic, 0, offset, 0, None, value) for offset, value in enumerate(payloads)]
    scorer = BatchScorer(
        names, shadow_guard=ShadowGuard(budget_ms=math.inf, cooldown_s=0.0), listener=lambda *_: None, emit_scores=False
    )
    scorer.score(records[:batch], snapshot)  # warm
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        for start in range(0, len(records), batch):
            scorer.score(records[start : start + batch], snapshot)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return Run(f"the workers' scoring code in memory (batches of {batch})", len(records) / seconds, seconds)


def run_benchmark(args: argparse.Namespace) -> dict[str, object]:
    bootstrap = command_bootstrap()
    names = bench_names("benchr")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="muse-bench-replay-") as tmp:
        tmp_path = Path(tmp)
        predictor = bench_predictor(tmp_path, trees=args.trees, depth=args.depth)
        try:
            deploy_single_tenant(bootstrap, names, args.partitions, predictor, tmp_path)
            produce_s = 0.0
            first: list[bytes] = []
            for start in range(0, args.events, PRODUCE_CHUNK):
                chunk = event_payloads(min(PRODUCE_CHUNK, args.events - start), seed=1, prefix=f"e{start}-")
                first = first or chunk[:BARE_EVENTS]
                produce_s += produce_backlog(bootstrap, names.input_topic(TENANT), chunk)
            print(f"backlog produced: {args.events:,} events in {produce_s:.1f} s")
            out = tmp_path / "replay"
            replay_run, replayed, replay_call_s = time_replay(bootstrap, names, out, args.batch_size)
            if replayed != args.events:
                raise MuseError(
                    f"the replay read {replayed:,} events of {names.input_topic(TENANT)}, not the {args.events:,} produced: "
                    "a bug in the replay or the backlog's production; the replay's log is above"
                )
            runs.append(replay_run)
            dataset_mib = sum(f.stat().st_size for f in out.rglob("*.parquet")) / 2**20
            if not args.skip_worker:
                partitions = [(names.input_topic(TENANT), p) for p in range(args.partitions)]
                worker = WorkerProcess(
                    bootstrap,
                    names.namespace,
                    "w1",
                    tmp_path,
                    "--max-batch",
                    str(args.max_batch),
                    "--commit-interval-ms",
                    str(args.commit_interval_ms),
                )
                progress = time_workers(
                    [worker], committed_counter(bootstrap, names.worker_group, partitions), args.events, timeout=args.timeout
                )
                runs.append(
                    Run("muse worker (exactly-once, scoring)", progress.rate, progress.seconds, progress.peak_rss_kib / 1024)
                )
            runs.append(bare_scoring(names, predictor, first, args.batch_size))
            runs.append(bare_xgboost(predictor, first, args.max_batch))
        finally:
            delete_namespace(TopicAdmin(bootstrap), names)
    return {
        "events": args.events,
        "partitions": args.partitions,
        "trees": args.trees,
        "depth": args.depth,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "dataset_mib": round(dataset_mib, 1),
        "replay_call_s": round(replay_call_s, 2),
        "runs": runs,
    }


def handle(args: argparse.Namespace) -> int:
    result = run_benchmark(args)
    runs: list[Run] = result["runs"]  # type: ignore[assignment]
    replay = runs[0]
    print(
        f"replay: {result['events']:,} events, 1 tenant x {result['partitions']} partitions, {result['trees']} trees "
        f"depth {result['depth']}, replay batches of {result['batch_size']:,}, {result['cpus']} CPUs; "
        f"dataset {result['dataset_mib']} MiB; the whole replay call (configs, model loading, labels too) "
        f"took {result['replay_call_s']} s"
    )
    print(f"{'path':<55}{'events/s':>11}{'seconds':>9}{'peak RSS MiB':>14}{'replay / this':>15}")
    for run in runs:
        rss = f"{run.peak_rss_mib:.0f}" if run.peak_rss_mib else "-"
        print(
            f"{run.path:<55}{run.events_per_s:>11,.0f}{run.seconds:>9.2f}{rss:>14}{replay.events_per_s / run.events_per_s:>15.2f}"
        )
    goals = {
        f"replay >= {TARGET_EVENTS_PER_S:,}/s": replay.events_per_s >= TARGET_EVENTS_PER_S,
        f"replay peak RSS < {TARGET_PEAK_RSS_MIB} MiB": (replay.peak_rss_mib or 0) < TARGET_PEAK_RSS_MIB,
    }
    by_path = {run.path.split(" (")[0]: run for run in runs}
    if "muse worker" in by_path:
        goals[f"replay >= {TARGET_WORKER_RATIO:g}x worker"] = (
            replay.events_per_s >= TARGET_WORKER_RATIO * by_path["muse worker"].events_per_s
        )
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items()))
    print(
        orjson.dumps(
            {
                "bench": "replay",
                **{k: v for k, v in result.items() if k != "runs"},
                "events_per_s": {path: round(run.events_per_s) for path, run in by_path.items()},
                "peak_rss_mib": {path: round(run.peak_rss_mib) for path, run in by_path.items() if run.peak_rss_mib},
                "goals": goals,
            }
        ).decode()
    )
    return 0
