"""``muse bench latency``: from an input event's acknowledged produce to its result being visible to
a read_committed consumer, at fixed offered loads and at saturation, for one exactly-once worker.

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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from muse_stream.bench.throughput import (
    TENANT,
    add_worker_arguments,
    bench_predictor,
    deploy_single_tenant,
    positive_ints,
)
from muse_stream.bench.workers import WorkerProcess
from muse_stream.bench.workload import bench_names, event_payloads
from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.clients.settings import consumer_config, producer_config
from muse_stream.topics import TopicNames, TopicSpec

TARGETS_P99_MS = {1000: 50.0, 5000: 100.0}


@dataclass
class LoadResult:
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
    to_scoring_p50_ms: float
    to_scoring_p99_ms: float
    scoring_to_visible_p50_ms: float
    scoring_to_visible_p99_ms: float
    # Transactions: each result carries its batch's size, so sum(1 / size) counts the batches.
    transactions_per_s: float
    mean_batch: float


def _offer(bootstrap: str, topic: str, rate: float | None, seconds: float, prefix: str, done: multiprocessing.Queue) -> None:
    """Produce events at ``rate`` per second (None: as fast as possible) for ``seconds``; report (count, seconds)."""
    payloads = event_payloads(int((rate or 60_000) * seconds) + 1, seed=2, prefix=prefix)
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 1 if rate else 5}))
    # Connected, with the topic's metadata and a producer id, before the clock starts: else the
    # first second's events go out as one burst.
    producer.list_topics(topic, timeout=30)
    producer.produce(topic, b"", b"warm-up")
    producer.flush(30)
    sent = 0
    started = time.monotonic()
    end = started + seconds
    while sent < len(payloads):
        now = time.monotonic()
        if now >= end:
            break
        due = len(payloads) if rate is None else min(int((now - started) * rate) + 1, len(payloads))
        while sent < due:
            try:
                producer.produce(topic, payloads[sent], payloads[sent][13:24])
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
            if rate is None and sent % 1000 == 0:
                producer.poll(0)
                if time.monotonic() >= end:
                    break
        producer.poll(0)
        if rate is not None:
            time.sleep(0.0005)
    elapsed = time.monotonic() - started
    producer.flush(60)
    done.put((sent, elapsed))


def stamp_on_append(bootstrap: str, names: TopicNames, partitions: int) -> None:
    """Create the tenant's input topic with broker append-time timestamps (before the other topics)."""
    spec = names.tenant_topic_specs(TENANT, partitions)[0]
    TopicAdmin(bootstrap).ensure([TopicSpec(spec.name, spec.partitions,
                                            {**spec.configs, "message.timestamp.type": "LogAppendTime"})])


def _reader(bootstrap: str, names: TopicNames, partitions: int) -> Consumer:
    consumer = Consumer(consumer_config(bootstrap, f"muse-bench-latency-{names.namespace}", **{"fetch.wait.max.ms": 5}))
    consumer.assign([TopicPartition(names.output_topic(TENANT), p, OFFSET_END) for p in range(partitions)])
    return consumer


def measure_load(bootstrap: str, names: TopicNames, reader: Consumer, rate: float | None, seconds: float,
                 commit_interval_ms: int, label: str) -> LoadResult:
    context = multiprocessing.get_context("spawn")
    done: multiprocessing.Queue = context.Queue()
    producer = context.Process(target=_offer, args=(bootstrap, names.input_topic(TENANT), rate, seconds, f"{label}-", done))
    producer.start()
    latencies: list[float] = []
    scored: list[float] = []
    batches = 0.0
    sent: int | None = None
    offered_s = seconds
    first = last = None
    deadline = time.monotonic() + seconds + 120
    prefix = f'"event_id":"{label}-'.encode()
    while time.monotonic() < deadline:
        message = reader.poll(0.1)
        if message is not None and message.error() is None:
            now_ms = time.time() * 1000
            value = message.value()
            if value and prefix in value:
                timings = orjson.loads(value)["timings"]
                latencies.append(now_ms - timings["event_timestamp_ms"])
                scored.append(timings["scored_at_ms"] - timings["event_timestamp_ms"])
                batches += 1 / timings["batch_size"]
                last = time.monotonic()
                first = first or last
        if sent is None and not done.empty():
            sent, offered_s = done.get()
        if sent is not None and len(latencies) >= sent:
            break
    producer.join(30)
    if sent is None or len(latencies) < sent:
        raise RuntimeError(f"{label}: {len(latencies)} of {sent} results arrived")
    values = np.asarray(latencies)
    to_scoring = np.asarray(scored)
    after = values - to_scoring

    def pct(array: np.ndarray, q: float) -> float:
        return round(float(np.percentile(array, q)), 1)

    return LoadResult(
        commit_interval_ms=commit_interval_ms, offered=label, offered_per_s=round(sent / offered_s),
        completed_per_s=round(len(values) / max((last or 0) - (first or 0), 1e-9)), events=len(values),
        p50_ms=pct(values, 50), p95_ms=pct(values, 95), p99_ms=pct(values, 99), max_ms=round(float(values.max()), 1),
        to_scoring_p50_ms=pct(to_scoring, 50), to_scoring_p99_ms=pct(to_scoring, 99),
        scoring_to_visible_p50_ms=pct(after, 50), scoring_to_visible_p99_ms=pct(after, 99),
        transactions_per_s=round(batches / max((last or 0) - (first or 0), 1e-9)), mean_batch=round(len(values) / batches, 1),
    )


def run_benchmark(args: argparse.Namespace) -> list[LoadResult]:
    bootstrap = command_bootstrap()
    results: list[LoadResult] = []
    loads: list[tuple[str, float | None]] = [(f"{rate}/s", float(rate)) for rate in args.rates] + [("saturation", None)]
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp:
        tmp_path = Path(tmp)
        predictor = bench_predictor(tmp_path, trees=args.trees, depth=args.depth)
        for interval in args.commit_intervals:
            names = bench_names("benchl")
            try:
                stamp_on_append(bootstrap, names, args.partitions)
                deploy_single_tenant(bootstrap, names, args.partitions, predictor, tmp_path)
                worker = WorkerProcess(bootstrap, names.namespace, "w1", tmp_path,
                                       "--commit-interval-ms", str(interval), "--max-batch", str(args.max_batch))
                reader = _reader(bootstrap, names, args.partitions)
                worker.start()
                try:
                    # Warm up: the worker has joined, loaded the model and scored once.
                    measure_load(bootstrap, names, reader, 200.0, 3.0, interval, "warmup")
                    for label, rate in loads:
                        results.append(measure_load(bootstrap, names, reader, rate, args.seconds, interval, label))
                        print(f"  interval {interval} ms, {label}: p99 {results[-1].p99_ms} ms", flush=True)
                finally:
                    worker.stop()
                    reader.close()
            finally:
                delete_namespace(TopicAdmin(bootstrap), names)
    return results


def _handle(args: argparse.Namespace) -> int:
    results = run_benchmark(args)
    print(f"latency: ack of the input produce -> visible to read_committed; one worker, 1 tenant x {args.partitions} "
          f"partitions, {args.trees} trees depth {args.depth}, {args.seconds:.0f} s per load, max batch {args.max_batch}")
    print(f"{'commit ms':>10}{'offered':>12}{'offered/s':>11}{'done/s':>9}{'events':>9}{'txn/s':>7}{'batch':>7}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  {'->scoring p50/p99':>18}  {'scoring->visible p50/p99':>25}")
    for r in results:
        print(f"{r.commit_interval_ms:>10}{r.offered:>12}{r.offered_per_s:>11,.0f}{r.completed_per_s:>9,.0f}{r.events:>9,}"
              f"{r.transactions_per_s:>7,.0f}{r.mean_batch:>7,.0f}"
              f"{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}{r.max_ms:>9.1f}"
              f"  {f'{r.to_scoring_p50_ms:.0f} / {r.to_scoring_p99_ms:.0f}':>18}"
              f"  {f'{r.scoring_to_visible_p50_ms:.0f} / {r.scoring_to_visible_p99_ms:.0f}':>25}")
    goals = {}
    for r in results:
        rate = int(r.offered[:-2]) if r.offered.endswith("/s") else None
        if rate in TARGETS_P99_MS:
            goals[f"p99 <= {TARGETS_P99_MS[rate]:.0f} ms at {rate}/s (commit {r.commit_interval_ms} ms)"] = r.p99_ms <= TARGETS_P99_MS[rate]
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'NOT met'}" for goal, ok in goals.items()))
    print(orjson.dumps({"bench": "latency", "partitions": args.partitions, "trees": args.trees, "depth": args.depth,
                        "seconds_per_load": args.seconds, "max_batch": args.max_batch,
                        "results": [r.__dict__ for r in results], "goals": goals}).decode())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("latency", help="produce-ack to read_committed-visible latency at fixed loads and saturation")
    parser.add_argument("--rates", type=positive_ints, default=[1000, 5000],
                        help="offered loads, events/s, comma-separated (default: 1000,5000)")
    parser.add_argument("--commit-intervals", type=positive_ints, default=[10, 50],
                        help="worker commit intervals to compare, ms, comma-separated (default: 10,50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per offered load")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the tenant's input topic (default: %(default)s)")
    add_worker_arguments(parser, commit_interval=False)
    parser.set_defaults(handler=_handle)
