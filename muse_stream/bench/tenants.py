"""``muse bench tenants``: throughput and worker memory as tenants grow, and with one and two workers.

For each tenant count (default 1, 10, 100, 500; one partition per tenant topic, so 500 tenants are
1,500 topics, created in batches and timed), a fresh namespace gets a deployment where the tenants
share 3 predictors (tenant i -> predictor i mod 3, each 300 trees of depth 6), and a backlog of
``--events`` events spread evenly over the tenants. One ``muse worker`` process is then timed from
its first to its last committed event, and its peak RSS (VmHWM) is read from /proc. Then the same
backlog over ``--scale-tenants`` tenants is drained by one and by two worker processes started
together (the two-worker figure includes their join and first rebalance). ``--repeat N`` runs all of
that N times in whole rounds and reports medians; the ratio to one tenant is the median of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from muse_stream.bench.profiles import profile_summary
from muse_stream.bench.progress import committed_counter
from muse_stream.bench.throughput import bench_predictor, create_output_topics, output_index_configs
from muse_stream.bench.workers import WorkerProcess, time_workers
from muse_stream.bench.workload import bench_names, event_payloads
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.producing import produce_records
from muse_stream.predictors import Predictor
from muse_stream.synthetic_deployment import deployment, publish
from muse_stream.topics import TopicNames

TARGET_THROUGHPUT_DROP = 0.20
TARGET_MEMORY_RATIO = 1.5


@dataclass
class TenantRun:
    tenants: int
    workers: int
    topics: int
    create_s: float
    events: int
    events_per_s: float
    seconds: float
    peak_rss_mib: float
    repeats_events_per_s: list[float] = field(default_factory=list)  # every repeat's figure, in run order


def median_run(repeats: list[TenantRun]) -> TenantRun:
    """One row of the table from its repeats: the median rate and time, the highest peak RSS."""
    return replace(
        repeats[0],
        create_s=round(statistics.median(r.create_s for r in repeats), 2),
        events_per_s=statistics.median(r.events_per_s for r in repeats),
        seconds=statistics.median(r.seconds for r in repeats),
        peak_rss_mib=max(r.peak_rss_mib for r in repeats),
        repeats_events_per_s=[r.events_per_s for r in repeats],
    )


def ratio_to(row: TenantRun, baseline: TenantRun) -> float:
    """The row's rate over the baseline's, round by round, then the median: each ratio compares two
    runs minutes apart in one round, never figures from different rounds."""
    return statistics.median(a / b for a, b in zip(row.repeats_events_per_s, baseline.repeats_events_per_s, strict=True))


def tenant_names(count: int) -> list[str]:
    return [f"t{i:04d}" for i in range(count)]


def run_one(
    bootstrap: str,
    predictors: dict[str, Predictor],
    store_dir: Path,
    tenants: int,
    workers: int,
    events: int,
    worker_args: list[str],
    timeout: float,
    profile: Path | None = None,
    output_configs: dict[str, str] | None = None,
) -> TenantRun:
    names: TopicNames = bench_names("bencht")
    tenant_list = tenant_names(tenants)
    try:
        started = time.monotonic()
        create_output_topics(bootstrap, names, tenant_list, 1, output_configs)
        ensure_tenant_topics(TopicAdmin(bootstrap), names, tenant_list, partitions=1)
        create_s = time.monotonic() - started
        pool = sorted(predictors)
        config = deployment(
            tenant_list, predictors, {(t, "card-fraud"): (pool[i % len(pool)], ()) for i, t in enumerate(tenant_list)}
        )
        publish(bootstrap, names, config, predictors, store_dir)
        payloads = event_payloads(events, seed=3)
        per_tenant = -(-events // tenants)
        inputs = [names.input_topic(t) for t in tenant_list]
        produce_records(
            bootstrap,
            ((inputs[i // per_tenant], None, p) for i, p in enumerate(payloads)),
            what="the backlog",
            config={"linger.ms": 20, "batch.size": 1_000_000},
        )
        processes = [WorkerProcess(bootstrap, names.namespace, f"w{n}", store_dir, *worker_args) for n in range(workers)]
        counter = committed_counter(bootstrap, names.worker_group, [(topic, 0) for topic in inputs])
        progress = time_workers(
            processes, counter, events, timeout=timeout, profile=profile, interval=0.02 if tenants <= 10 else 0.1
        )
        return TenantRun(
            tenants,
            workers,
            3 * tenants,
            round(create_s, 2),
            events,
            progress.rate,
            progress.seconds,
            progress.peak_rss_kib / 1024,
        )
    finally:
        delete_namespace(TopicAdmin(bootstrap), names)


def run_benchmark(args: argparse.Namespace) -> list[TenantRun]:
    bootstrap = command_bootstrap()
    worker_args = ["--commit-interval-ms", str(args.commit_interval_ms), "--max-batch", str(args.max_batch)]
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        store_dir = Path(tmp)
        predictors = {
            f"fraud-{seed}": bench_predictor(store_dir, trees=args.trees, depth=args.depth, seed=seed, version=str(seed))
            for seed in range(3)
        }
        output_configs = output_index_configs(args)
        plan = [(count, 1) for count in args.tenants] + [(args.scale_tenants, 1), (args.scale_tenants, 2)]
        repeats: list[list[TenantRun]] = [[] for _ in plan]
        # A broker started a minute ago is still compiling its request paths: had the first row (the
        # baseline of every ratio) run then, the ratios would have looked better than they are.
        first_tenants, first_workers = plan[0]
        for _ in range(args.warmup_rounds):
            r = run_one(
                bootstrap,
                predictors,
                store_dir,
                first_tenants,
                first_workers,
                args.events,
                worker_args,
                args.timeout,
                output_configs=output_configs,
            )
            print(f"  warm-up: {first_tenants} tenant(s), {first_workers} worker(s): {r.events_per_s:,.0f} events/s", flush=True)
        # Whole rounds, one after another: drift on a shared machine then touches every row alike.
        for round_number in range(args.repeat):
            for row, (tenants, workers) in enumerate(plan):
                profile = (
                    args.profile.with_name(f"{args.profile.name}-{tenants}t.txt")
                    if args.profile and round_number == 0 and workers == 1 and tenants in args.tenants
                    else None
                )
                r = run_one(
                    bootstrap,
                    predictors,
                    store_dir,
                    tenants,
                    workers,
                    args.events,
                    worker_args,
                    args.timeout,
                    profile,
                    output_configs,
                )
                repeats[row].append(r)
                print(
                    f"  {tenants} tenants, {workers} worker(s): {r.events_per_s:,.0f} events/s, "
                    f"peak RSS {r.peak_rss_mib:.0f} MiB, {r.topics} topics created in {r.create_s:.1f} s",
                    flush=True,
                )
        runs = [median_run(row) for row in repeats]
    return runs


def handle(args: argparse.Namespace) -> int:
    runs = run_benchmark(args)
    print(
        f"tenants: {args.events:,} events per run spread evenly over the tenants (1 partition each), "
        f"3 shared predictors of {args.trees} trees depth {args.depth}, commit interval {args.commit_interval_ms} ms, "
        f"after {args.warmup_rounds} warm-up run(s)"
        + (
            f"; medians of {args.repeat} rounds: rates, and the per-round ratios to 1 tenant (range of rates in the last column)"
            if args.repeat > 1
            else ""
        )
    )
    print(
        f"{'tenants':>8}{'workers':>8}{'topics':>8}{'create s':>10}{'events/s':>11}{'seconds':>9}"
        f"{'peak RSS MiB':>14}{'vs 1 tenant':>13}" + ("   range events/s" if args.repeat > 1 else "")
    )
    single = runs[0]
    for r in runs:
        spread = f"   {min(r.repeats_events_per_s):,.0f}-{max(r.repeats_events_per_s):,.0f}" if args.repeat > 1 else ""
        print(
            f"{r.tenants:>8}{r.workers:>8}{r.topics:>8}{r.create_s:>10.1f}{r.events_per_s:>11,.0f}{r.seconds:>9.2f}"
            f"{r.peak_rss_mib:>14.0f}{ratio_to(r, single):>13.2f}{spread}"
        )
    one_worker = [r for r in runs if r.workers == 1]
    largest = max(one_worker, key=lambda r: r.tenants)
    scale = [r for r in runs if r.tenants == args.scale_tenants]
    goals = {
        f"{largest.tenants} tenants within {TARGET_THROUGHPUT_DROP:.0%} of 1 tenant": ratio_to(largest, single)
        >= 1 - TARGET_THROUGHPUT_DROP,
        f"{largest.tenants} tenants memory within {TARGET_MEMORY_RATIO}x of 1 tenant": largest.peak_rss_mib
        <= TARGET_MEMORY_RATIO * single.peak_rss_mib,
    }
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items()))
    if args.profile:
        for count in args.tenants:
            path = args.profile.with_name(f"{args.profile.name}-{count}t.txt")
            print(f"py-spy profile of the worker with {count} tenants ({path}), wall-clock samples in Worker.run:")
            for name, inclusive, own in profile_summary(path, top=16):
                print(f"  {name[:88]:<88}{inclusive:>8.1%}{own:>8.1%}")
    print(
        orjson.dumps(
            {
                "bench": "tenants",
                "events": args.events,
                "trees": args.trees,
                "depth": args.depth,
                "commit_interval_ms": args.commit_interval_ms,
                "warmup_rounds": args.warmup_rounds,
                "runs": [r.__dict__ for r in runs],
                "throughput_ratio_largest_to_one": round(ratio_to(largest, single), 3),
                "memory_ratio_largest_to_one": round(largest.peak_rss_mib / single.peak_rss_mib, 3),
                "two_workers_to_one": round(scale[-1].events_per_s / scale[-2].events_per_s, 3),
                "goals": goals,
            }
        ).decode()
    )
    return 0
