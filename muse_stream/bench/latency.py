"""``muse bench latency``: from an input event's acknowledged produce to its result being visible to
a read_committed consumer, at fixed offered loads and at saturation, for one exactly-once worker;
at the fixed loads, for the pass-through worker (``bench/passthrough.py``: the same loop, consumer,
transactional producer and commits, with no scoring), which is the floor Kafka's transactions set
on this machine, so the muse rows' distance from it is what scoring costs; and for a Quix Streams exactly-once pass-through app (``bench/quix_baseline.py``)
with the same commit interval: the floor of the app a Quix user would write (a per-record scoring
app cannot keep up with these loads on 2 cores; ``muse bench throughput`` shows its rate).
``--repeat N`` runs it all N times and reports medians, with every run's p99.

Clock: the input topic stamps records with the broker's append time (``LogAppendTime``), the moment
the produce is acknowledged (one replica, acks=all), and every result carries that timestamp back
(``timings.event_timestamp_ms``); a read_committed reader in this process takes the wall clock when
the result is delivered to it. Both clocks are this machine's, at millisecond resolution. The loads
come from a producer in its own process (so pacing and reading do not share a GIL); saturation means
that producer unthrottled, so latency there includes the backlog it builds.

The batching rule sets the trade-off. The worker batches naturally: a batch is whatever the
consumer has queued when the previous transaction ends (an idle worker waits for the first record),
capped at ``--max-batch`` records and at the commit interval (``--commit-interval-ms``, the longest a
batch gathers). So at low load every transaction is small and latency is about one or two
transaction cycles; as load grows, batches grow with it and the per-transaction cost (broker round
trips for the offsets and the commit, one marker per partition) is spread over more events. The
cost of low latency is transactions per second (broker work), shown per load as txn/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from muse_stream.bench.passthrough import PASSTHROUGH_ENTRY
from muse_stream.bench.quix_baseline import quix_python
from muse_stream.bench.throughput import (
    TENANT,
    bench_predictor,
    deploy_single_tenant,
    output_index_configs,
)
from muse_stream.bench.workers import WorkerProcess
from muse_stream.bench.workload import bench_names, event_payloads
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.clients.settings import consumer_config, producer_config
from muse_stream.errors import MuseError
from muse_stream.predictors import Predictor
from muse_stream.topics import TopicNames, TopicSpec

TARGETS_P99_MS = {1000: 50.0, 5000: 50.0}  # of the median run (with --repeat)
TARGET_EVERY_RUN_P99_MS = 100.0
BURST_RATE = 60_000  # events/s: an unthrottled producer that does not sustain offers this x its seconds
POOL_EVENTS = 100_000  # distinct events a producer cycles through (a flood at 400,000/s would need GBs)
SUSTAINED_QUEUE_KBYTES = 65_536  # a flood's local queue: 64 MiB, about 90,000 events


@dataclass
class LoadResult:
    app: str  # "muse", "pass-through", "quix passthrough" or "plain consumer" (bench/noisy_neighbour.py)
    commit_interval_ms: int
    offered: str
    offered_per_s: float
    completed_per_s: float
    events: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # The two legs: ack -> the batch's scoring starts (consumer fetch + waiting for the batch to
    # close), and scoring starts -> visible (score, produce, commit, markers, reader's fetch).
    # (None for Quix, whose results carry no timings.)
    to_scoring_p50_ms: float | None
    to_scoring_p99_ms: float | None
    scoring_to_visible_p50_ms: float | None
    scoring_to_visible_p99_ms: float | None
    # Transactions: each result carries its batch's size, so sum(1 / size) counts the batches.
    transactions_per_s: float | None
    mean_batch: float | None
    # With --repeat: every round's p99, in run order (the figures above are then medians).
    rounds_p99_ms: list[float] | None = None
    # The warm-up rounds' p99, in run order: run first, counted in no other figure.
    warmup_p99_ms: list[float] | None = None


def _offer(
    bootstrap: str,
    topic: str,
    rate: float | None,
    seconds: float,
    prefix: str,
    done: multiprocessing.Queue,
    client_id: str = "rdkafka",
    sustain: bool = False,
) -> None:
    """Produce events at ``rate`` per second (None: as fast as possible) for ``seconds``; report
    (count, seconds). Unthrottled, it offers ``BURST_RATE`` x ``seconds`` events and stops, however
    soon that is (a backlog of a known size: the latency bench's saturation), unless ``sustain``:
    then it goes on until the seconds are up (a flood), with a bounded local queue, so what it
    offers is what the broker takes. Events cycle through a pool of at most ``POOL_EVENTS``."""
    limit = None if sustain else int((rate or BURST_RATE) * seconds) + 1
    payloads = event_payloads(min(limit or POOL_EVENTS, POOL_EVENTS), seed=2, prefix=prefix)
    pool = len(payloads)
    settings: dict[str, object] = {"linger.ms": 1 if rate else 5, "client.id": client_id}
    if sustain:
        settings["queue.buffering.max.kbytes"] = SUSTAINED_QUEUE_KBYTES
    producer = Producer(producer_config(bootstrap, **settings))
    # Connected, with the topic's metadata and a producer id, before the clock starts: else the
    # first second's events go out as one burst.
    producer.list_topics(topic, timeout=30)
    producer.produce(topic, b"", b"warm-up")
    producer.flush(30)
    sent = 0
    started = time.monotonic()
    end = started + seconds
    while limit is None or sent < limit:
        now = time.monotonic()
        if now >= end:
            break
        due = sent + 1000 if rate is None else int((now - started) * rate) + 1
        if limit is not None:
            due = min(due, limit)
        while sent < due:
            payload = payloads[sent % pool]
            try:
                producer.produce(topic, payload, payload[13:24])
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)  # unthrottled: every 1,000 events, the clock is read again above
        if rate is not None:
            time.sleep(0.0005)
    elapsed = time.monotonic() - started
    producer.flush(60)
    done.put((sent, elapsed))


def percentile_ms(values: np.ndarray, q: float) -> float:
    """The q-th percentile of latencies in ms, to 0.1 ms, as the tables print them."""
    return round(float(np.percentile(values, q)), 1)


def stamp_on_append(bootstrap: str, names: TopicNames, partitions: int, tenant: str = TENANT) -> None:
    """Create the tenant's input topic with broker append-time timestamps (before the other topics)."""
    spec = names.tenant_topic_specs(tenant, partitions)[0]
    TopicAdmin(bootstrap).ensure(
        [TopicSpec(spec.name, spec.partitions, {**spec.configs, "message.timestamp.type": "LogAppendTime"})]
    )


def latency_reader(bootstrap: str, names: TopicNames, partitions: int, tenant: str = TENANT) -> Consumer:
    """A read_committed reader of the tenant's output from its end, never committing."""
    consumer = Consumer(consumer_config(bootstrap, f"muse-bench-latency-{names.namespace}", **{"fetch.wait.max.ms": 5}))
    consumer.assign([TopicPartition(names.output_topic(tenant), p, OFFSET_END) for p in range(partitions)])
    return consumer


def measure_load(
    bootstrap: str,
    names: TopicNames,
    reader: Consumer,
    rate: float | None,
    seconds: float,
    commit_interval_ms: int,
    label: str,
    app: str = "muse",
    tenant: str = TENANT,
    consumer_alive: Callable[[], bool] | None = None,
) -> LoadResult:
    """One offered load. A muse result carries its input's timestamp in ``timings``; the pass-through
    worker's result is keyed by it; a Quix result is produced with it, which the reader sees; the
    noisy-neighbour floor's reader reads the input records themselves. ``consumer_alive`` tells
    whether the app under test still runs: once it or the paced producer has died, this says so at
    once instead of waiting out the deadline."""
    context = multiprocessing.get_context("spawn")
    done: multiprocessing.Queue = context.Queue()
    producer = context.Process(target=_offer, args=(bootstrap, names.input_topic(tenant), rate, seconds, f"{label}-", done))
    producer.start()
    latencies: list[float] = []
    scored: list[float] = []
    batches = 0.0
    sent: int | None = None
    offered_s = seconds
    first = last = None
    deadline = time.monotonic() + seconds + 120
    prefix = f'"event_id":"{label}-'.encode()
    try:
        while time.monotonic() < deadline:
            # What is queued, without waiting; else the next record as soon as it comes. One clock reading
            # per delivery: a reader of a flood (the noisy-neighbour floor) keeps up at tens of thousands
            # of records per second.
            messages = reader.consume(1000, timeout=0) or [m for m in (reader.poll(0.1),) if m is not None]
            now_ms = time.time() * 1000
            for message in messages:
                value = message.value() if message.error() is None else None
                if value and prefix in value:
                    if app == "muse":
                        timings = orjson.loads(value)["timings"]
                        latencies.append(now_ms - timings["event_timestamp_ms"])
                        scored.append(timings["scored_at_ms"] - timings["event_timestamp_ms"])
                        batches += 1 / timings["batch_size"]
                    elif app == "pass-through":  # keyed by its input's timestamp (bench/passthrough.py)
                        latencies.append(now_ms - int(cast(bytes, message.key())))
                    else:
                        latencies.append(now_ms - message.timestamp()[1])
                    last = time.monotonic()
                    first = first or last
            if sent is None and not done.empty():
                sent, offered_s = done.get()
            if sent is not None and len(latencies) >= sent:
                break
            if producer.exitcode not in (None, 0):
                raise MuseError(
                    f"{app} {label}: the paced producer of {names.input_topic(tenant)} exited with code "
                    f"{producer.exitcode} after {len(latencies):,} results (its error is above)"
                )
            if consumer_alive is not None and not consumer_alive():
                raise MuseError(f"{app} {label}: the {app} process exited after {len(latencies):,} results (its log is above)")
    except BaseException:  # a failure here, or Ctrl-C: the paced producer must not outlive the load
        producer.terminate()
        producer.join(5)
        raise
    producer.join(30)
    if sent is None or len(latencies) < sent:
        raise MuseError(
            f"{app} {label}: {len(latencies):,} of {'the' if sent is None else f'{sent:,}'} events offered had "
            f"results after {seconds + 120:.0f} s; the machine may be too busy, or the {app} process stuck (its log is above)"
        )
    values = np.asarray(latencies)
    span = max((last or 0) - (first or 0), 1e-9)

    legs: dict[str, float | None] = dict.fromkeys(
        (
            "to_scoring_p50_ms",
            "to_scoring_p99_ms",
            "scoring_to_visible_p50_ms",
            "scoring_to_visible_p99_ms",
            "transactions_per_s",
            "mean_batch",
        )
    )
    if scored:
        to_scoring = np.asarray(scored)
        after = values - to_scoring
        legs = {
            "to_scoring_p50_ms": percentile_ms(to_scoring, 50),
            "to_scoring_p99_ms": percentile_ms(to_scoring, 99),
            "scoring_to_visible_p50_ms": percentile_ms(after, 50),
            "scoring_to_visible_p99_ms": percentile_ms(after, 99),
            "transactions_per_s": round(batches / span),
            "mean_batch": round(len(values) / batches, 1),
        }
    return LoadResult(
        app=app,
        commit_interval_ms=commit_interval_ms,
        offered=label,
        offered_per_s=round(sent / offered_s),
        completed_per_s=round(len(values) / span),
        events=len(values),
        p50_ms=percentile_ms(values, 50),
        p95_ms=percentile_ms(values, 95),
        p99_ms=percentile_ms(values, 99),
        max_ms=round(float(values.max()), 1),
        **legs,  # type: ignore[arg-type]
    )


def run_round(
    bootstrap: str, predictor: Predictor, tmp_path: Path, args: argparse.Namespace, quix: str | None
) -> list[LoadResult]:
    """One whole run: for each commit interval a fresh namespace and worker (warmed up, then every
    load), then the pass-through worker and the Quix pass-through app (run by the interpreter
    ``quix``, None: left out), each in its own namespace at the same interval and fixed loads."""
    results: list[LoadResult] = []
    rates: list[tuple[str, float | None]] = [(f"{rate}/s", float(rate)) for rate in args.rates]
    apps = [("muse", rates + [("saturation", None)]), ("pass-through", rates)]
    apps += [] if quix is None else [("quix passthrough", rates)]
    for interval in args.commit_intervals:
        for app, loads in apps:
            names = bench_names("benchl")
            try:
                stamp_on_append(bootstrap, names, args.partitions)
                deploy_single_tenant(
                    bootstrap, names, args.partitions, predictor if app == "muse" else None, tmp_path, output_index_configs(args)
                )
                if app == "muse":
                    worker = WorkerProcess(
                        bootstrap,
                        names.namespace,
                        "w1",
                        tmp_path,
                        "--commit-interval-ms",
                        str(interval),
                        "--max-batch",
                        str(args.max_batch),
                    )
                elif app == "pass-through":
                    worker = WorkerProcess(
                        bootstrap,
                        names.namespace,
                        "p1",
                        tmp_path,
                        "--commit-interval-ms",
                        str(interval),
                        "--max-batch",
                        str(args.max_batch),
                        "--stamp-key",
                        entry=PASSTHROUGH_ENTRY,
                    )
                else:
                    assert quix is not None  # the Quix app is in apps only then
                    worker = WorkerProcess(
                        bootstrap,
                        names.namespace,
                        "q1",
                        tmp_path,
                        "--commit-interval-ms",
                        str(interval),
                        entry=("muse_stream.bench.quix_baseline", "passthrough"),
                        python=quix,
                    )
                reader = latency_reader(bootstrap, names, args.partitions)
                worker.start()
                try:
                    # Warm up: the worker has joined, loaded the model and scored once.
                    measure_load(bootstrap, names, reader, 200.0, 3.0, interval, "warmup", app, consumer_alive=worker.alive)
                    for label, rate in loads:
                        results.append(
                            measure_load(
                                bootstrap, names, reader, rate, args.seconds, interval, label, app, consumer_alive=worker.alive
                            )
                        )
                        print(
                            f"  {app}, interval {interval} ms, {label}: p99 {results[-1].p99_ms} ms "
                            f"(load average {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
                except MuseError:
                    print(worker.log_tail(30), flush=True)
                    raise
                finally:
                    worker.stop()
                    reader.close()
            finally:
                delete_namespace(TopicAdmin(bootstrap), names)
    return results


def median_result(rounds: list[LoadResult]) -> LoadResult:
    """One row from its rounds: the median of every figure, the highest max, and every round's p99."""

    def median(name: str) -> float | None:
        values = [getattr(r, name) for r in rounds]
        return None if None in values else round(statistics.median(values), 1)

    figures: dict[str, Any] = {  # the float | None fields of LoadResult, by name
        name: median(name)
        for name in (
            "offered_per_s",
            "completed_per_s",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "to_scoring_p50_ms",
            "to_scoring_p99_ms",
            "scoring_to_visible_p50_ms",
            "scoring_to_visible_p99_ms",
            "transactions_per_s",
            "mean_batch",
        )
    }
    return replace(
        rounds[0],
        **figures,
        events=sum(r.events for r in rounds),
        max_ms=max(r.max_ms for r in rounds),
        rounds_p99_ms=[r.p99_ms for r in rounds],
    )


def run_benchmark(args: argparse.Namespace) -> list[LoadResult]:
    """``--warmup-rounds`` whole rounds that count in no figure, then ``--repeat`` whole rounds; with
    more than one, each row is the median of its rounds. The warm-up is for the broker: one started
    a minute ago is still compiling its request paths (its JIT spent about 43 s of CPU in the first
    70 s of this bench, 6 s in the next 70), which takes a core of these two from every app."""
    bootstrap = command_bootstrap()
    quix = None if args.skip_quix else quix_python()
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        tmp_path = Path(tmp)
        predictor = bench_predictor(tmp_path, trees=args.trees, depth=args.depth)
        warmups = []
        for number in range(args.warmup_rounds):
            print(f"warm-up round {number + 1} of {args.warmup_rounds} (counted in no figure)", flush=True)
            warmups.append(run_round(bootstrap, predictor, tmp_path, args, quix))
        rounds = []
        for number in range(args.repeat):
            if args.repeat > 1 or warmups:
                print(f"round {number + 1} of {args.repeat}", flush=True)
            rounds.append(run_round(bootstrap, predictor, tmp_path, args, quix))
    rows = rounds[0] if args.repeat == 1 else [median_result(list(row)) for row in zip(*rounds, strict=True)]
    if not warmups:
        return rows
    return [replace(row, warmup_p99_ms=[r.p99_ms for r in warmed]) for row, *warmed in zip(rows, *warmups, strict=True)]


def _cell(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def handle(args: argparse.Namespace) -> int:
    results = run_benchmark(args)
    print(
        f"latency: ack of the input produce -> visible to read_committed; 1 tenant x {args.partitions} "
        f"partitions, {args.trees} trees depth {args.depth}, {args.seconds:.0f} s per load, max batch {args.max_batch}"
        + (f"; medians of {args.repeat} whole runs (p99 of each run in the last column)" if args.repeat > 1 else "")
        + (
            f"; output topics with index.interval.bytes {args.output_index_interval_bytes}"
            if args.output_index_interval_bytes
            else ""
        )
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"{'app':<17}{'commit ms':>10}{'offered':>12}{'offered/s':>11}{'done/s':>9}{'events':>11}{'txn/s':>7}{'batch':>7}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  {'->scoring p50/p99':>18}  {'scoring->visible p50/p99':>25}"
        + ("  p99 per run" if args.repeat > 1 else "")
        + ("  warm-up p99" if args.warmup_rounds else "")
    )
    for r in results:
        legs = (
            ("-", "-")
            if r.to_scoring_p50_ms is None
            else (
                f"{r.to_scoring_p50_ms:.0f} / {r.to_scoring_p99_ms:.0f}",
                f"{r.scoring_to_visible_p50_ms:.0f} / {r.scoring_to_visible_p99_ms:.0f}",
            )
        )
        print(
            f"{r.app:<17}{r.commit_interval_ms:>10}{r.offered:>12}{r.offered_per_s:>11,.0f}{r.completed_per_s:>9,.0f}"
            f"{r.events:>11,}{_cell(r.transactions_per_s):>7}{_cell(r.mean_batch):>7}"
            f"{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}  {legs[0]:>18}  {legs[1]:>25}"
            + (f"  {', '.join(f'{p:.0f}' for p in r.rounds_p99_ms)}" if r.rounds_p99_ms else "")
            + (f"  {', '.join(f'{p:.0f}' for p in r.warmup_p99_ms)}" if r.warmup_p99_ms else "")
        )
    goals = {}
    for r in results:
        rate = int(r.offered[:-2]) if r.offered.endswith("/s") else None
        if r.app == "muse" and rate in TARGETS_P99_MS:
            where = f"at {rate}/s (commit {r.commit_interval_ms} ms)"
            goals[f"p99 <= {TARGETS_P99_MS[rate]:.0f} ms {where}"] = r.p99_ms <= TARGETS_P99_MS[rate]
            every = r.rounds_p99_ms or [r.p99_ms]
            goals[f"every run's p99 < {TARGET_EVERY_RUN_P99_MS:.0f} ms {where}"] = max(every) < TARGET_EVERY_RUN_P99_MS
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items()))
    print(
        orjson.dumps(
            {
                "bench": "latency",
                "partitions": args.partitions,
                "trees": args.trees,
                "depth": args.depth,
                "seconds_per_load": args.seconds,
                "max_batch": args.max_batch,
                "repeat": args.repeat,
                "warmup_rounds": args.warmup_rounds,
                "output_index_interval_bytes": args.output_index_interval_bytes,
                "load_average": os.getloadavg()[0],
                "results": [r.__dict__ for r in results],
                "goals": goals,
            }
        ).decode()
    )
    return 0
