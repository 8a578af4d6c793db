"""``muse bench noisy-neighbour``: a tenant flooding its input must not hurt another tenant's latency.

One ``muse worker`` serves two tenants of one fresh namespace: ``flood`` (tenant A, ``--partitions``
partitions) and ``steady`` (tenant B, one partition). B sends ``--rate`` events/s (default 1,000) for
``--seconds``, three times in the same run, with the same worker:

1. alone;
2. while A floods its input at saturation (an unthrottled producer in its own process, for the
   whole phase) under a produce quota of ``--quota-bytes`` per second; the quota is Kafka's
   client-id quota on A's producer (``client.id``), which Kafka enforces on any broker, secured or
   not (a tenant's principal quota, ``muse tenants quota``, needs the secured broker and throttles
   the same way);
3. while A floods at saturation without a quota: here the broker took 200,000-500,000 events/s of
   it (last, as its backlog outlives the phase); ``--flood-rate`` paces this flood instead.

B's latency is ``muse bench latency``'s: from the broker's append time of B's event to its result
being visible to a read_committed reader. A's throughput is what the worker committed of A's input
while B was measured. Goal: B's p99 under each flood within 2x of B's p99 alone, and under 100 ms.
The worker's fair batch assembly (``pipeline/fairness.py``) is what keeps A's backlog from delaying
B's events; ``--no-fair-share`` runs the worker without it, to see the difference.

Then the same three phases with the pass-through worker (``--skip-passthrough`` leaves them out):
the same loop, fair shares and transactions, a scorer that copies bytes; A's unthrottled flood is
paced at the rate A wrote beside the muse worker. What B's p99 there has in common with the muse
worker's comes from the loop and Kafka's transactions, not from scoring.

Then the floor, with no worker: both floods again, in a fresh namespace (the second paced at that
rate too), while a consumer with the worker's fetch settings reads A's and B's inputs and does
nothing else: no scoring, no transactions, no pausing. B's latency there, from append to delivery,
is what the machine, the broker and the flood leave of B's latency for any worker on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from muse_stream.bench.latency import (
    LoadResult,
    _offer,
    latency_reader,
    measure_load,
    stamp_on_append,
)
from muse_stream.bench.passthrough import PASSTHROUGH_ENTRY
from muse_stream.bench.progress import committed_counter, high_watermark_counter
from muse_stream.bench.throughput import bench_predictor
from muse_stream.bench.workers import WorkerProcess
from muse_stream.bench.workload import bench_names
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace, ensure_tenant_topics
from muse_stream.clients.security import set_client_id_quota
from muse_stream.clients.settings import consumer_config, worker_prefetch
from muse_stream.errors import MuseError
from muse_stream.predictors import Predictor
from muse_stream.synthetic_deployment import deployment, publish
from muse_stream.topics import TopicNames

FLOOD, STEADY = "flood", "steady"
TARGET_P99_RATIO = 2.0
TARGET_P99_MS = 100.0
FLOOD_HEAD_START_S = 2.0  # A floods this long before B is measured, so B meets a backlog
FLOOD_TAIL_S = 3.0  # and goes on this long past B's seconds (B's producer takes a moment to start)
DRAIN_TIMEOUT_S = 300.0


@dataclass
class Phase:
    # "B alone" | "B under A's flood, A quota ..." | "B under A's flood, no quota", the same prefixed
    # "pass-through worker: ", or "floor: plain consumer, A's flood, ..."
    name: str
    steady: LoadResult  # B's figures
    flood_written_per_s: float | None  # what reached A's input, events/s (None: no flood)
    flood_scored_per_s: float | None  # what the worker committed of A's input while B was measured


def _flood(
    bootstrap: str, names: TopicNames, seconds: float, client_id: str, partitions: int, rate: float | None = None
) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.Queue]:
    """A's producer in its own process (unthrottled, or paced at ``rate``), once its first records
    are in A's input; with the queue it reports on, which must outlive the process: a spawned child
    that unpickles it after the parent dropped it dies (FileNotFoundError from SemLock), and A never
    floods."""
    context = multiprocessing.get_context("spawn")
    done: multiprocessing.Queue = context.Queue()
    process = context.Process(
        target=_offer,
        args=(bootstrap, names.input_topic(FLOOD), rate, seconds, "flood-", done, client_id, True),
        daemon=True,
    )
    written = high_watermark_counter(bootstrap, [(names.input_topic(FLOOD), p) for p in range(partitions)])
    try:
        before = written()
        process.start()
        deadline = time.monotonic() + 120
        while written() <= before + 1:  # + its warm-up record
            if time.monotonic() > deadline or not process.is_alive():
                raise MuseError(f"tenant A's flood producer wrote nothing to {names.input_topic(FLOOD)} within 120 s")
            time.sleep(0.05)
    finally:
        written.close()  # type: ignore[attr-defined]
    return process, done


def _drain(bootstrap: str, names: TopicNames, partitions: int) -> None:
    """Wait until the worker has committed all of A's input, so the next phase starts without a backlog."""
    inputs = [(names.input_topic(FLOOD), p) for p in range(partitions)]
    written, committed = high_watermark_counter(bootstrap, inputs), committed_counter(bootstrap, names.worker_group, inputs)
    try:
        target = written()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while committed() < target:
            if time.monotonic() > deadline:
                raise MuseError(
                    f"the worker did not drain tenant A's backlog of {target:,} events within {DRAIN_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.2)
    finally:
        written.close()  # type: ignore[attr-defined]
        committed.close()  # type: ignore[attr-defined]


def _measure_b(
    bootstrap: str,
    names: TopicNames,
    args: argparse.Namespace,
    reader: Consumer,
    label: str,
    app: str,
    consumer_alive: Callable[[], bool] | None,
) -> LoadResult:
    """B's ``--rate`` for ``--seconds``, timed as ``muse bench latency`` times a load."""
    return measure_load(
        bootstrap, names, reader, float(args.rate), args.seconds, args.commit_interval_ms, label, app, STEADY, consumer_alive
    )


def _under_flood(
    bootstrap: str,
    names: TopicNames,
    args: argparse.Namespace,
    reader: Consumer,
    phase: tuple[str, str],
    client_id: str,
    *,
    app: str = "muse",
    quota: bool = False,
    flood_rate: float | None = None,
    consumer_alive: Callable[[], bool] | None = None,
) -> Phase:
    """B measured while A floods (paced at ``flood_rate`` if given); A's figures are over the same
    window: what reached A's input (acknowledged, so after any quota's throttling) and what the
    worker committed of it. ``app`` is "muse" or "pass-through" (``reader`` reads B's results) or
    "plain consumer" (the floor: ``reader`` reads the inputs themselves, and no worker commits anything).
    ``quota``: A's client id is under a produce quota, so A may get nothing through in a short window;
    without one, a flood that wrote nothing while B was measured is an error, not a figure."""
    name, label = phase
    inputs = [(names.input_topic(FLOOD), p) for p in range(args.partitions)]
    committed = None if app == "plain consumer" else committed_counter(bootstrap, names.worker_group, inputs)
    written = high_watermark_counter(bootstrap, inputs)
    seconds = FLOOD_HEAD_START_S + args.seconds + FLOOD_TAIL_S
    flood, _flood_report = _flood(bootstrap, names, seconds, client_id, args.partitions, flood_rate)
    try:
        time.sleep(FLOOD_HEAD_START_S)
        scored_before = 0 if committed is None else committed()
        written_before, started = written(), time.monotonic()
        steady = _measure_b(bootstrap, names, args, reader, label, app, consumer_alive)
        seconds = time.monotonic() - started
        appended = (written() - written_before) / seconds
        if not appended and not quota:  # a throttled flood may get nothing through in a short window
            raise MuseError(
                f"tenant A's flood wrote nothing to {names.input_topic(FLOOD)} while B was measured ({name}): "
                "its producer stopped early; see its process's output above"
            )
        scored = None if committed is None else round((committed() - scored_before) / seconds)
    finally:
        # Stopped, not flushed: under a quota its buffered records would take minutes to trickle in.
        flood.terminate()
        flood.join(30)
        if committed is not None:
            committed.close()  # type: ignore[attr-defined]
        written.close()  # type: ignore[attr-defined]
    return Phase(name, steady, round(appended), scored)


def _consumer_floor(bootstrap: str, args: argparse.Namespace, quota: bool, flood_rate: float | None) -> Phase:
    """B's events read, from append to delivery, by a consumer of A's and B's inputs that does
    nothing else, while A floods (under its quota if ``quota``; paced at ``flood_rate``, the rate A
    wrote at beside the worker, if given: unthrottled beside a consumer that does nothing, A writes
    at another rate, and B's latency follows it); no worker runs."""
    names = bench_names("benchf")
    client_id = f"{names.namespace}-flood"
    which = f"A quota {args.quota_bytes:,} B/s" if quota else "no quota"
    try:
        stamp_on_append(bootstrap, names, 1, STEADY)
        ensure_tenant_topics(TopicAdmin(bootstrap), names, [FLOOD], partitions=args.partitions)
        ensure_tenant_topics(TopicAdmin(bootstrap), names, [STEADY], partitions=1)
        if quota:
            set_client_id_quota(bootstrap, client_id, args.quota_bytes)
        consumer = Consumer(
            consumer_config(
                bootstrap,
                f"muse-bench-floor-{names.namespace}",
                **{"fetch.wait.max.ms": 10, **worker_prefetch(args.max_batch, fair=True)},
            )
        )
        inputs = [(names.input_topic(FLOOD), p) for p in range(args.partitions)] + [(names.input_topic(STEADY), 0)]
        consumer.assign([TopicPartition(topic, partition, OFFSET_END) for topic, partition in inputs])
        try:
            phase = (f"floor: plain consumer, A's flood, {which}", "floorq" if quota else "floor")
            return _under_flood(
                bootstrap, names, args, consumer, phase, client_id, app="plain consumer", quota=quota, flood_rate=flood_rate
            )
        finally:
            consumer.close()
    finally:
        if quota:
            set_client_id_quota(bootstrap, client_id, None)
        delete_namespace(TopicAdmin(bootstrap), names)


def _worker_phases(
    bootstrap: str, args: argparse.Namespace, predictor: Predictor, tmp_path: Path, app: str, flood_rate: float | None
) -> list[Phase]:
    """B alone, then under A's flood with A's quota, then without (paced at ``flood_rate`` if given),
    served by one worker in a fresh namespace: ``muse worker`` (``app`` "muse") or the pass-through
    worker (the same loop, fair shares and transactions, no scoring)."""
    names = bench_names("benchn" if app == "muse" else "benchp")
    client_id = f"{names.namespace}-flood"
    prefix = "" if app == "muse" else "pass-through worker: "
    worker_args = ["--commit-interval-ms", str(args.commit_interval_ms), "--max-batch", str(args.max_batch)]
    worker_args += ["--contended-batch", str(args.contended_batch), *([] if args.fair_share else ["--no-fair-share"])]
    try:
        stamp_on_append(bootstrap, names, 1, STEADY)
        ensure_tenant_topics(TopicAdmin(bootstrap), names, [FLOOD], partitions=args.partitions)
        ensure_tenant_topics(TopicAdmin(bootstrap), names, [STEADY], partitions=1)
        if app == "muse":
            config = deployment([FLOOD, STEADY], {"live": predictor}, {(t, "card-fraud"): ("live", ()) for t in (FLOOD, STEADY)})
            publish(bootstrap, names, config, {"live": predictor}, tmp_path)
            worker = WorkerProcess(bootstrap, names.namespace, "w1", tmp_path, *worker_args)
        else:
            worker = WorkerProcess(
                bootstrap, names.namespace, "p1", tmp_path, *worker_args, "--stamp-key", entry=PASSTHROUGH_ENTRY
            )
        reader = latency_reader(bootstrap, names, 1, STEADY)
        worker.start()
        phases: list[Phase] = []
        try:
            measure_load(
                bootstrap, names, reader, 200.0, 3.0, args.commit_interval_ms, "warmup", app, STEADY, consumer_alive=worker.alive
            )
            alone = _measure_b(bootstrap, names, args, reader, "alone", app, worker.alive)
            phases.append(Phase(f"{prefix}B alone", alone, None, None))
            _progress(phases[-1])
            set_client_id_quota(bootstrap, client_id, args.quota_bytes)
            try:
                phase = (f"{prefix}B under A's flood, A quota {args.quota_bytes:,} B/s", "quota")
                phases.append(
                    _under_flood(
                        bootstrap, names, args, reader, phase, client_id, app=app, quota=True, consumer_alive=worker.alive
                    )
                )
            finally:
                set_client_id_quota(bootstrap, client_id, None)
            _progress(phases[-1])
            _drain(bootstrap, names, args.partitions)
            phase = (f"{prefix}B under A's flood, no quota", "noquota")
            phases.append(
                _under_flood(
                    bootstrap, names, args, reader, phase, client_id, app=app, flood_rate=flood_rate, consumer_alive=worker.alive
                )
            )
            _progress(phases[-1])
        except Exception:
            print(worker.log_tail(30))
            raise
        finally:
            worker.stop()
            reader.close()
    finally:
        delete_namespace(TopicAdmin(bootstrap), names)
    return phases


def run_benchmark(args: argparse.Namespace) -> list[Phase]:
    """``--warmup-rounds`` runs of the muse worker's phases, counted in no figure (a freshly started
    broker is still compiling its request paths; ``muse bench latency`` has the figures); then the
    muse worker's phases; the pass-through worker's, with A's unthrottled flood paced at the rate A
    wrote beside the muse worker; then the plain consumer's floor."""
    bootstrap = command_bootstrap()
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        tmp_path = Path(tmp)
        predictor = bench_predictor(tmp_path, trees=args.trees, depth=args.depth)
        for number in range(args.warmup_rounds):
            print(f"warm-up round {number + 1} of {args.warmup_rounds} (counted in no figure)", flush=True)
            _worker_phases(bootstrap, args, predictor, tmp_path, "muse", args.flood_rate)
        phases = _worker_phases(bootstrap, args, predictor, tmp_path, "muse", args.flood_rate)
        flood_rate = phases[2].flood_written_per_s
        if not args.skip_passthrough:
            phases += _worker_phases(bootstrap, args, predictor, tmp_path, "pass-through", flood_rate)
    # The quota sets A's rate in the first; the second offers what A wrote beside the worker unthrottled.
    for quota, rate in ((True, None), (False, flood_rate)):
        phases.append(_consumer_floor(bootstrap, args, quota, rate))
        _progress(phases[-1])
    return phases


def _progress(phase: Phase) -> None:
    print(f"  {phase.name}: B p99 {phase.steady.p99_ms} ms (load average {os.getloadavg()[0]:.1f})", flush=True)


def goals(phases: list[Phase]) -> dict[str, bool]:
    alone = phases[0].steady.p99_ms
    result = {}
    for phase in phases[1:]:
        if phase.steady.app != "muse":  # the floor's phases
            continue
        which = phase.name.removeprefix("B under ")
        result[f"B p99 within {TARGET_P99_RATIO:g}x of alone ({which})"] = phase.steady.p99_ms <= TARGET_P99_RATIO * alone
        result[f"B p99 < {TARGET_P99_MS:.0f} ms ({which})"] = phase.steady.p99_ms < TARGET_P99_MS
    return result


def _ratio(p99_ms: float, alone_ms: float | None) -> str:
    """B's p99 over the same app's B alone; "-" for the floor, which has no phase alone."""
    return "-" if alone_ms is None else f"{p99_ms / alone_ms:.2f}"


def handle(args: argparse.Namespace) -> int:
    phases = run_benchmark(args)
    alone = {p.steady.app: p.steady.p99_ms for p in phases if p.flood_written_per_s is None}
    print(
        f"noisy neighbour: tenant B sends {args.rate:,}/s for {args.seconds:.0f} s per phase, alone and while tenant A "
        f"({args.partitions} partitions) floods "
        f"{'at saturation' if args.flood_rate is None else f'at {args.flood_rate:,}/s without a quota'}; one worker (fair shares "
        f"{'on' if args.fair_share else 'OFF'}, max batch {args.max_batch}, contended batch {args.contended_batch}, "
        f"commit {args.commit_interval_ms} ms), "
        f"{args.trees} trees depth {args.depth}; A's quota is a client-id produce quota; "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"{'phase':<52}{'B done/s':>9}{'B p50 ms':>10}{'B p99 ms':>10}{'B max ms':>10}{'p99/alone':>10}"
        f"{'A written/s':>13}{'A scored/s':>12}"
    )
    for phase in phases:
        r = phase.steady
        flood = (
            "-" if phase.flood_written_per_s is None else f"{phase.flood_written_per_s:,.0f}",
            "-" if phase.flood_scored_per_s is None else f"{phase.flood_scored_per_s:,.0f}",
        )
        print(
            f"{phase.name:<52}{r.completed_per_s:>9,.0f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}{r.max_ms:>10.1f}"
            f"{_ratio(r.p99_ms, alone.get(r.app)):>10}{flood[0]:>13}{flood[1]:>12}"
        )
    met = goals(phases)
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in met.items()))
    print(
        orjson.dumps(
            {
                "bench": "noisy-neighbour",
                "rate": args.rate,
                "seconds_per_phase": args.seconds,
                "flood_partitions": args.partitions,
                "flood_rate": args.flood_rate,
                "warmup_rounds": args.warmup_rounds,
                "fair_share": args.fair_share,
                "max_batch": args.max_batch,
                "contended_batch": args.contended_batch,
                "commit_interval_ms": args.commit_interval_ms,
                "trees": args.trees,
                "depth": args.depth,
                "quota": {"kind": "client-id producer_byte_rate", "bytes_per_s": args.quota_bytes},
                "load_average": os.getloadavg()[0],
                "phases": [
                    {
                        "name": p.name,
                        "steady": p.steady.__dict__,
                        "flood_written_per_s": p.flood_written_per_s,
                        "flood_scored_per_s": p.flood_scored_per_s,
                    }
                    for p in phases
                ],
                "goals": met,
            }
        ).decode()
    )
    return 0
