"""``muse bench throughput``: events/s of one exactly-once worker process, and its baselines, in one run.

A backlog of ``--events`` input events (default 200,000; the model's 30 feature names, values
rounded to 4 significant digits) is produced to each of three fresh namespaces before any worker
starts. Then, one after another, each consumer is started on its backlog and timed from its first
to its last completed event (worker start-up and model loading are not timed; a transactional
consumer's clock starts at its first result written, since a 5 s commit interval commits its first
events late):

- ``muse worker``: the production exactly-once worker (300 trees, depth 6, 30 features); completed =
  committed offsets of its group, which commit in the same transaction as the results;
- the pass-through worker: the same Worker loop and transactions with a scorer that copies bytes
  (no parsing, no scoring): the ceiling of any worker on this machine;
- a plain Faust agent doing the same scoring (at-least-once); completed = records on its output;
- Quix Streams apps with exactly-once (``bench/quix_baseline.py``): passing bytes through, and
  scoring per record as Quix's docs show (on ``--quix-score-events``, default 20,000), each with our
  commit interval and with Quix's default of 5 s; completed = committed offsets of its group;
- bare ``Booster.inplace_predict`` on the same events' matrix, in batches of ``--max-batch``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from muse_stream.bench.faust_baseline import app_id
from muse_stream.bench.passthrough import PASSTHROUGH_ENTRY
from muse_stream.bench.profiles import profile_summary
from muse_stream.bench.progress import committed_counter, high_watermark_counter, records_written
from muse_stream.bench.quix_baseline import QUIX_DEFAULT_COMMIT_INTERVAL_MS, quix_python
from muse_stream.bench.workers import WorkerProcess, time_workers
from muse_stream.bench.workload import bench_names, event_payloads
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.producing import produce_records
from muse_stream.predictors import Predictor
from muse_stream.synthetic_deployment import deployment, publish, train_predictor
from muse_stream.topics import TopicNames, TopicSpec

TENANT = "bank-a"
TARGET_EVENTS_PER_S = 25_000
TARGET_PASSTHROUGH_RATIO = 0.85
TARGET_FAUST_RATIO = 3.0
TARGET_QUIX_PASSTHROUGH_RATIO = 1.5  # to the faster of Quix's two commit intervals
TARGET_QUIX_SCORE_RATIO = 10.0


@dataclass
class Run:
    path: str
    events_per_s: float
    seconds: float
    peak_rss_mib: float | None = None
    rounds_events_per_s: list[float] | None = None  # with --repeat: every round's rate (events_per_s is their median)


def bench_predictor(
    store_dir: Path, *, trees: int, depth: int, seed: int = 0, name: str = "fraud", version: str = "1"
) -> Predictor:
    return train_predictor(
        store_dir, name=name, version=version, n_trees=trees, max_depth=depth, b=0.1, seed=seed, n_train=20_000
    )


def create_output_topics(
    bootstrap: str, names: TopicNames, tenants: list[str], partitions: int, configs: dict[str, str] | None
) -> None:
    """The tenants' output topics, before their other topics, with these topic-level settings on top
    of ours (``--output-index-interval-bytes``); nothing when there are none."""
    if configs:
        TopicAdmin(bootstrap).ensure(
            [
                TopicSpec(spec.name, spec.partitions, {**spec.configs, **configs})
                for tenant in tenants
                for spec in names.tenant_topic_specs(tenant, partitions, kinds=("output",))
            ]
        )


def output_index_configs(args: argparse.Namespace) -> dict[str, str] | None:
    """The output topics' settings that ``--output-index-interval-bytes`` asks for, if any."""
    interval = args.output_index_interval_bytes
    return {"index.interval.bytes": str(interval)} if interval else None


def deploy_single_tenant(
    bootstrap: str,
    names: TopicNames,
    partitions: int,
    predictor: Predictor | None,
    store_dir: Path,
    output_configs: dict[str, str] | None = None,
) -> None:
    create_output_topics(bootstrap, names, [TENANT], partitions, output_configs)
    ensure_tenant_topics(TopicAdmin(bootstrap), names, [TENANT], partitions=partitions)
    if predictor is not None:
        config = deployment([TENANT], {"live": predictor}, {(TENANT, "card-fraud"): ("live", ())})
        publish(bootstrap, names, config, {"live": predictor}, store_dir)


def produce_backlog(bootstrap: str, topic: str, payloads: list[bytes]) -> float:
    started = time.monotonic()
    produce_records(
        bootstrap,
        ((topic, p[13 : p.index(b'"', 13)], p) for p in payloads),  # key: event id
        what="the backlog",
        config={"linger.ms": 20, "batch.size": 1_000_000},
    )
    return time.monotonic() - started


def bare_xgboost(predictor: Predictor, payloads: list[bytes], batch: int, repetitions: int = 3) -> Run:
    features = [orjson.loads(p)["features"] for p in payloads]
    matrix = predictor.vectorize(features)
    booster = predictor.booster
    booster.inplace_predict(matrix[:batch], validate_features=False)  # warm
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        for start in range(0, len(matrix), batch):
            booster.inplace_predict(matrix[start : start + batch], validate_features=False)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return Run(f"bare xgboost inplace_predict (batches of {batch})", len(matrix) / seconds, seconds)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """``--warmup-rounds`` rounds of our two workers alone, counted in no figure (a broker started
    minutes ago is still compiling its request paths: every path ran slower in a first round), then
    ``--repeat`` whole rounds, one after another. With more than one, a path's rate is the median
    of its rounds (its range kept), and every ratio is the median of the per-round ratios: each
    compares two drains minutes apart in one round, never figures from different rounds."""
    quix = "" if args.skip_quix else quix_python()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        tmp_path = Path(tmp)
        predictor = bench_predictor(tmp_path, trees=args.trees, depth=args.depth)
        payloads = event_payloads(args.events, seed=1)
        workers_only = argparse.Namespace(**{**vars(args), "skip_quix": True, "skip_faust": True})
        for number in range(args.warmup_rounds):
            print(f"warm-up round {number + 1} of {args.warmup_rounds} (counted in no figure)", flush=True)
            warm = run_round(workers_only, "", predictor, payloads, tmp_path, None)
            print("  " + ", ".join(f"{run_key(r)}: {r.events_per_s:,.0f}/s" for r in warm["runs"]), flush=True)
        for number in range(args.repeat):
            if args.repeat > 1:
                print(f"round {number + 1} of {args.repeat}", flush=True)
            profile = args.profile if number == 0 else None  # one profile, of the first round
            rounds.append(run_round(args, quix, predictor, payloads, tmp_path, profile))
            if args.repeat > 1:
                print("  " + ", ".join(f"{run_key(r)}: {r.events_per_s:,.0f}/s" for r in rounds[-1]["runs"]), flush=True)
    if args.repeat == 1:
        return rounds[0]
    runs = [
        Run(
            row[0].path,
            statistics.median(run.events_per_s for run in row),
            statistics.median(run.seconds for run in row),
            max((run.peak_rss_mib or 0.0 for run in row), default=0.0) or None,
            [run.events_per_s for run in row],
        )
        for row in zip(*(r["runs"] for r in rounds), strict=True)
    ]

    def median_of(name: str) -> dict[str, float]:
        return {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}

    return {
        **rounds[-1],
        "load_average": os.getloadavg()[0],
        "runs": runs,
        "path_ratios": median_of("path_ratios"),
        "quix_commit_markers": {
            key: min(r["quix_commit_markers"][key] for r in rounds) for key in rounds[0]["quix_commit_markers"]
        },
        "repeat": args.repeat,
    }


def run_round(
    args: argparse.Namespace, quix: str, predictor: Predictor, payloads: list[bytes], tmp_path: Path, profile: Path | None
) -> dict[str, Any]:
    """One whole run: every backlog produced, then drained one after another; ``quix`` is the
    interpreter of the Quix apps ("" when they are left out), ``tmp_path`` the predictor's store
    and the workers' log directory."""
    bootstrap = command_bootstrap()
    with_quix = not args.skip_quix
    quix_intervals = {"matched": args.commit_interval_ms, "default": QUIX_DEFAULT_COMMIT_INTERVAL_MS}
    kinds = [
        "score",
        "pass",
        *(["faust"] if not args.skip_faust else []),
        *([f"quix-{mode}-{which}" for mode in ("passthrough", "score") for which in quix_intervals] if with_quix else []),
    ]
    spaces = {kind: bench_names(f"bench{kind[0]}") for kind in kinds}
    backlog = {kind: args.quix_score_events if kind.startswith("quix-score") else args.events for kind in kinds}
    worker_args = ["--commit-interval-ms", str(args.commit_interval_ms), "--max-batch", str(args.max_batch)]
    runs: list[Run] = []
    quix_markers: dict[str, int] = {}
    mean_bytes = sum(map(len, payloads)) / len(payloads)
    try:
        produce_s = 0.0
        for kind, names in spaces.items():
            scoring = kind != "pass" and not kind.startswith("quix-passthrough")
            deploy_single_tenant(bootstrap, names, args.partitions, predictor if scoring else None, tmp_path)
            produce_s += produce_backlog(bootstrap, names.input_topic(TENANT), payloads[: backlog[kind]])
        print(f"backlogs produced: {len(kinds)} ({', '.join(f'{k} {backlog[k]:,}' for k in kinds)}) in {produce_s:.1f} s")

        def drain(
            kind: str, process: WorkerProcess, path: str, *, transactional: bool = True, profile: Path | None = None
        ) -> None:
            names = spaces[kind]
            inputs = [(names.input_topic(TENANT), p) for p in range(args.partitions)]
            outputs = [(names.output_topic(TENANT), p) for p in range(args.partitions)]
            # Transactional drains: from the first result written to the last event committed
            # (results and offsets commit together); Faust: records on its output.
            count = (
                committed_counter(bootstrap, names.worker_group, inputs)
                if transactional
                else high_watermark_counter(bootstrap, outputs)
            )
            progress = time_workers(
                [process],
                count,
                backlog[kind],
                timeout=args.timeout,
                profile=profile,
                started=records_written(bootstrap, outputs) if transactional else None,
            )
            runs.append(Run(path, progress.rate, progress.seconds, progress.peak_rss_kib / 1024))
            if kind.startswith("quix"):
                quix_markers[run_key(runs[-1])] = commit_markers(bootstrap, outputs, backlog[kind])

        drain(
            "score",
            WorkerProcess(bootstrap, spaces["score"].namespace, "w1", tmp_path, *worker_args),
            "muse worker (exactly-once, scoring)",
            profile=profile,
        )
        drain(
            "pass",
            WorkerProcess(
                bootstrap,
                spaces["pass"].namespace,
                "p1",
                tmp_path,
                *worker_args,
                entry=PASSTHROUGH_ENTRY,
            ),
            "pass-through worker (exactly-once, no scoring)",
        )
        if not args.skip_faust:
            drain(
                "faust",
                WorkerProcess(
                    bootstrap,
                    spaces["faust"].namespace,
                    "f1",
                    tmp_path,
                    "--tenants",
                    TENANT,
                    "--max-batch",
                    str(args.max_batch),
                    "--within-ms",
                    str(args.commit_interval_ms),
                    entry=("muse_stream.bench.faust_baseline",),
                ),
                "faust agent (at-least-once, same scoring)",
                transactional=False,
            )
        if with_quix:
            for mode in ("passthrough", "score"):
                for which, interval in quix_intervals.items():
                    kind = f"quix-{mode}-{which}"
                    what = "passing bytes through" if mode == "passthrough" else "scoring per record"
                    drain(
                        kind,
                        WorkerProcess(
                            bootstrap,
                            spaces[kind].namespace,
                            f"q-{mode}-{which}",
                            tmp_path,
                            "--commit-interval-ms",
                            str(interval),
                            entry=("muse_stream.bench.quix_baseline", mode),
                            python=quix,
                        ),
                        f"quix {mode} commit {interval} ms (exactly-once, {what})",
                    )

        runs.append(bare_xgboost(predictor, payloads, args.max_batch))
    finally:
        for names in spaces.values():
            delete_namespace(TopicAdmin(bootstrap), names, app_id(names))

    muse = runs[0].events_per_s
    return {
        "events": args.events,
        "quix_score_events": args.quix_score_events if with_quix else None,
        "mean_event_bytes": round(mean_bytes, 1),
        "partitions": args.partitions,
        "trees": args.trees,
        "depth": args.depth,
        "features": len(predictor.feature_names),
        "commit_interval_ms": args.commit_interval_ms,
        "max_batch": args.max_batch,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "runs": runs,
        "path_ratios": {run_key(run): muse / run.events_per_s for run in runs},
        "quix_commit_markers": quix_markers,
        "repeat": 1,
        "warmup_rounds": args.warmup_rounds,
    }


def named_ratios(path_ratios: dict[str, float]) -> dict[str, float]:
    """muse's ratio to each path (muse / path), under the names the JSON line and the goals use."""
    names = {
        "pass-through worker": "to_passthrough",
        "bare xgboost inplace_predict": "to_bare_xgboost",
        "faust agent": "to_faust",
    }
    return {
        names.get(key) or "to_" + key.replace(" ", "_").replace("_commit_", "_").replace("_ms", "ms"): ratio
        for key, ratio in path_ratios.items()
        if key in names or key.startswith("quix")
    }


def run_key(run: Run) -> str:
    """A run's name in the JSON line: its path without the parenthesis."""
    return run.path.split(" (")[0]


def commit_markers(bootstrap: str, outputs: list[tuple[str, int]], records: int) -> int:
    """Transaction markers on an output that got ``records`` records, one per input event: the
    offsets beyond the records. More than zero means the app wrote its results in transactions."""
    return high_watermark_counter(bootstrap, outputs)() - records


def handle(args: argparse.Namespace) -> int:
    result = run_benchmark(args)
    runs: list[Run] = result["runs"]
    path_ratios: dict[str, float] = result["path_ratios"]
    ratios = named_ratios(path_ratios)
    repeat: int = result["repeat"]
    muse = runs[0].events_per_s
    print(
        f"throughput: {result['events']:,} events of {result['mean_event_bytes']:.0f} B mean, 1 tenant x "
        f"{result['partitions']} partitions, {result['trees']} trees depth {result['depth']} over "
        f"{result['features']} features, commit interval {result['commit_interval_ms']} ms, "
        f"max batch {result['max_batch']}, {result['cpus']} CPUs"
        + (
            f"; medians of {repeat} rounds: rates, and the per-round ratios (range of rates in the last column)"
            if repeat > 1
            else ""
        )
    )
    if result["quix_score_events"]:
        print(f"(the Quix scoring apps drain {result['quix_score_events']:,} of the same events: they score one at a time)")
    print(
        f"{'path':<75}{'events/s':>11}{'seconds':>9}{'peak RSS MiB':>14}{'muse / this':>13}"
        + ("   range events/s" if repeat > 1 else "")
    )
    for run in runs:
        rss = f"{run.peak_rss_mib:.0f}" if run.peak_rss_mib else "-"
        spread = f"   {min(run.rounds_events_per_s):,.0f}-{max(run.rounds_events_per_s):,.0f}" if run.rounds_events_per_s else ""
        print(f"{run.path:<75}{run.events_per_s:>11,.0f}{run.seconds:>9.2f}{rss:>14}{path_ratios[run_key(run)]:>13.2f}{spread}")
    markers: dict[str, int] = result["quix_commit_markers"]
    if markers:
        print(
            "Quix transactions, commit markers on each output (0 would mean no transactions): "
            + ", ".join(f"{key}: {count:,}" for key, count in markers.items())
        )
    goals = {
        f"muse >= {TARGET_EVENTS_PER_S:,}/s": muse >= TARGET_EVENTS_PER_S,
        f"muse >= {TARGET_PASSTHROUGH_RATIO}x pass-through": ratios["to_passthrough"] >= TARGET_PASSTHROUGH_RATIO,
    }
    if "to_faust" in ratios:
        goals[f"muse >= {TARGET_FAUST_RATIO}x faust"] = ratios["to_faust"] >= TARGET_FAUST_RATIO
    for mode, target in (("passthrough", TARGET_QUIX_PASSTHROUGH_RATIO), ("score", TARGET_QUIX_SCORE_RATIO)):
        against = [v for k, v in ratios.items() if k.startswith(f"to_quix_{mode}_")]
        if against:  # against the faster Quix app: the smaller ratio
            goals[f"muse >= {target}x quix {mode} (faster commit interval)"] = min(against) >= target
    if markers:
        goals["quix ran transactions"] = min(markers.values()) > 0
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items()))
    figures = {
        "bench": "throughput",
        **{k: v for k, v in result.items() if k not in ("runs", "path_ratios")},
        "events_per_s": {run_key(run): round(run.events_per_s) for run in runs},
        "rounds_events_per_s": {run_key(run): [round(r) for r in run.rounds_events_per_s or []] for run in runs}
        if repeat > 1
        else None,
        "peak_rss_mib": {run_key(run): round(run.peak_rss_mib) for run in runs if run.peak_rss_mib},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "goals": goals,
    }
    print(orjson.dumps(figures).decode())
    if args.profile:
        print(
            f"py-spy profile of the muse worker ({args.profile}), wall-clock samples of its main thread (waits included) in Worker.run:"
        )
        print(f"{'function':<90}{'inclusive':>10}{'self':>8}")
        for name, inclusive, own in profile_summary(args.profile):
            print(f"{name[:89]:<90}{inclusive:>10.1%}{own:>8.1%}")
    return 0
