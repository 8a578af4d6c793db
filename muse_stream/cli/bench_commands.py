"""``muse bench ...``: the benchmarks' arguments; each runs ``handle(args)`` of its module under ``muse_stream.bench``.

The arguments are defined here rather than in the benchmark modules, which load XGBoost and Kafka
clients: ``muse bench X --help`` (and every other ``muse`` command) builds this parser without
importing them; a benchmark's module is imported when it runs.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from muse_stream.bench.faults import FaultKind
from muse_stream.cli.options import duration, non_negative_int, positive_int, positive_ints
from muse_stream.defaults import (
    COMMIT_INTERVAL_MS,
    CONTENDED_BATCH,
    MAX_BATCH,
    NOISY_QUOTA_BYTES,
    PROMOTION_SHADOW_EVENTS,
    SOAK_MEAN_GAP_S,
    SOAK_PARTITIONS,
    SOAK_PAUSE_S,
    SOAK_RATE,
    SOAK_SEED,
    STABILITY_EVENTS_PER_WINDOW,
    STABILITY_WINDOWS,
)
from muse_stream.replay import DEFAULT_BATCH_SIZE


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks that print figures")
    bench_subparsers = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for add_benchmark in (
        _predictor_cost,
        _stability,
        _throughput,
        _latency,
        _tenants,
        _noisy_neighbour,
        _replay,
        _promotion,
        _soak,
    ):
        add_benchmark(bench_subparsers)


@dataclass(frozen=True)
class BenchmarkHandler:
    """A benchmark's handler: imports its module when the benchmark runs, then calls the module's ``handle``."""

    module: str

    def __call__(self, args: argparse.Namespace) -> int:
        run: Callable[[argparse.Namespace], int] = importlib.import_module(self.module).handle
        return run(args)


def _docstring(module: str) -> str | None:
    """A benchmark module's docstring, read from its source without importing the module."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None  # a module of this package
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8")), clean=False)


def add_worker_arguments(parser: argparse.ArgumentParser, *, commit_interval: bool = True) -> None:
    """The model and worker settings every pipeline benchmark takes."""
    parser.add_argument("--trees", type=int, default=300, help="trees of the benchmark's model (default: %(default)s)")
    parser.add_argument("--depth", type=int, default=6, help="depth of its trees (default: %(default)s)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH,
        help="the worker's most records per transaction (default: %(default)s)",
    )
    if commit_interval:
        parser.add_argument(
            "--commit-interval-ms",
            type=int,
            default=COMMIT_INTERVAL_MS,
            help="the worker's commit interval (default: %(default)s)",
        )


def events_per_s(text: str) -> float:
    """A rate above 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a rate above 0 events/s")
    return value


def _predictor_cost(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predictor", help="cost of the predictor DAG relative to bare XGBoost")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per scored batch (default: %(default)s)")
    parser.add_argument("--trees", type=int, default=300, help="trees of the model (default: %(default)s)")
    parser.add_argument("--depth", type=int, default=6, help="depth of its trees (default: %(default)s)")
    parser.add_argument("--repetitions", type=int, default=300, help="timed repetitions of each side (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed repetitions first (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the batch (default: %(default)s)")
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.predictor_cost"))


def _stability(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stability",
        help="alert-rate stability of quantile-mapped predictors across a model update (synthetic stream)",
        description=_docstring("muse_stream.bench.stability"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic stream and models (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=STABILITY_WINDOWS, help="train + fit + evaluation windows (>= 3)")
    parser.add_argument(
        "--events-per-window",
        type=int,
        default=STABILITY_EVENTS_PER_WINDOW,
        help="events in each window (default: %(default)s)",
    )
    parser.add_argument("--fraud-rate", type=float, default=0.02, help="fraction of fraudulent events (default: %(default)s)")
    parser.add_argument(
        "--drift",
        type=float,
        default=0.1,
        help="drift per window of a second, drifting scenario run after the stationary one (0: stationary only)",
    )
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.stability"))


def _throughput(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "throughput", help="events/s of one exactly-once worker vs pass-through, Faust, Quix Streams, bare XGBoost"
    )
    parser.add_argument("--events", type=int, default=200_000, help="events in each backlog drained (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the input topic (default: %(default)s)")
    add_worker_arguments(parser)
    parser.add_argument("--skip-faust", action="store_true", help="leave out the Faust baseline")
    parser.add_argument("--skip-quix", action="store_true", help="leave out the Quix Streams baselines")
    parser.add_argument(
        "--quix-score-events",
        type=positive_int,
        default=20_000,
        help="events the Quix per-record scoring apps drain (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each consumer may take")
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="N whole rounds; report each path's median rate and the median of the per-round ratios (default: 1)",
    )
    _warmup_rounds(parser, "rounds of the muse and pass-through workers alone", shown="their rates")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="sample the muse worker with py-spy into FILE (raw collapsed stacks) and print a summary",
    )
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.throughput"))


def _latency(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("latency", help="produce-ack to read_committed-visible latency at fixed loads and saturation")
    parser.add_argument(
        "--rates", type=positive_ints, default=[1000, 5000], help="offered loads, events/s, comma-separated (default: 1000,5000)"
    )
    parser.add_argument(
        "--commit-intervals",
        type=positive_ints,
        default=[10, 50],
        help="worker commit intervals to compare, ms, comma-separated (default: 10,50)",
    )
    parser.add_argument("--seconds", type=duration, default=10.0, help="seconds per offered load (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the tenant's input topic (default: %(default)s)")
    add_worker_arguments(parser, commit_interval=False)
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="N whole runs; report the median of each figure and every run's p99 (default: 1)",
    )
    _warmup_rounds(parser, "whole runs")
    parser.add_argument("--skip-quix", action="store_true", help="leave out the Quix Streams pass-through baseline")
    _output_index_interval(parser)
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.latency"))


def _warmup_rounds(parser: argparse.ArgumentParser, what: str, shown: str = "their p99") -> None:
    """One option for the benches that compare figures of one run: a broker started a minute ago is
    still compiling its request paths, which costs every app beside it a share of the CPU."""
    parser.add_argument(
        "--warmup-rounds",
        type=non_negative_int,
        default=1,
        metavar="N",
        help=f"N {what} first, counted in no figure ({shown} printed as they run), while a freshly started "
        "broker compiles its request paths (default: %(default)s; 0 measures a cold broker)",
    )


def _output_index_interval(parser: argparse.ArgumentParser) -> None:
    """One option for two benches: what the setting saves a drain of new tenants (tenants) and what
    it costs a consumer tailing the output (latency)."""
    parser.add_argument(
        "--output-index-interval-bytes",
        type=positive_int,
        metavar="BYTES",
        help="create the output topics with this topic-level index.interval.bytes (broker default: "
        "4096): how often the broker indexes them, which a drain of many new tenants pays on disk, and "
        "how far it scans to find a tailing consumer's position",
    )


def _tenants(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tenants", help="throughput and worker RSS with 1..500 tenants, and with 1 vs 2 workers")
    parser.add_argument(
        "--tenants",
        type=positive_ints,
        default=[1, 2, 10, 100, 500],
        help="tenant counts, comma-separated (default: 1,2,10,100,500)",
    )
    _output_index_interval(parser)
    parser.add_argument("--scale-tenants", type=int, default=10, help="tenants for the 1-vs-2-worker runs")
    parser.add_argument(
        "--events", type=int, default=200_000, help="events drained per run, spread over the tenants (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        metavar="N",
        help="run every row N times, in N whole rounds, and report medians (default: 1)",
    )
    add_worker_arguments(parser)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each drain may take (default: %(default)s)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PREFIX",
        help="sample each single-worker run with py-spy into PREFIX-<tenants>t.txt and summarize",
    )
    _warmup_rounds(parser, "runs of the first row (its tenants, one worker)", shown="their rates")
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.tenants"))


def _noisy_neighbour(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "noisy-neighbour", help="a steady tenant's latency alone and while another tenant floods, with and without a quota"
    )
    parser.add_argument("--rate", type=positive_int, default=1000, help="tenant B's events/s (default: %(default)s)")
    parser.add_argument("--seconds", type=duration, default=10.0, help="seconds B is measured per phase (default: %(default)s)")
    parser.add_argument(
        "--partitions", type=positive_int, default=4, help="partitions of tenant A's input topic (default: %(default)s)"
    )
    parser.add_argument(
        "--contended-batch",
        type=positive_int,
        default=CONTENDED_BATCH,
        help="the worker's most records per transaction while both tenants have records (default: %(default)s)",
    )
    parser.add_argument(
        "--quota-bytes",
        type=positive_int,
        default=NOISY_QUOTA_BYTES,
        help="tenant A's produce quota in the quota phase, bytes/s (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-rate",
        type=positive_int,
        metavar="EVENTS_PER_S",
        help="pace tenant A's flood without a quota at this rate (default: unthrottled, as fast as the broker takes it, "
        "for the whole phase)",
    )
    parser.add_argument(
        "--no-fair-share", dest="fair_share", action="store_false", help="run the worker without fair batch assembly"
    )
    _warmup_rounds(parser, "runs of the muse worker's three phases")
    parser.add_argument(
        "--skip-passthrough",
        action="store_true",
        help="leave out the pass-through worker's phases (the same loop and transactions, no scoring)",
    )
    add_worker_arguments(parser)
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.noisy_neighbour"))


def _replay(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="events/s of muse replay (Kafka -> Parquet) vs the live worker and bare XGBoost",
        description=_docstring("muse_stream.bench.replay"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the backlog (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the input topic (default: %(default)s)")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="the replay's records per batch (default: %(default)s)"
    )
    add_worker_arguments(parser)
    parser.add_argument("--skip-worker", action="store_true", help="leave out the live worker's run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the worker may take")
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.replay"))


def _promotion(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "promotion", help="lead time of a model update under steady load: shadow, collect, fit, plan, promote, live"
    )
    parser.add_argument(
        "--shadow-events",
        type=positive_int,
        default=PROMOTION_SHADOW_EVENTS,
        metavar="N",
        help="shadow scores to collect and fit on (default: %(default)s)",
    )
    parser.add_argument(
        "--fresh-events",
        type=positive_int,
        default=30_000,
        metavar="N",
        help="results of the promoted predictor on fresh traffic the errors are measured on (default: %(default)s)",
    )
    parser.add_argument(
        "--rate", type=events_per_s, default=1000.0, help="events/s offered over the 3 tenants (default: %(default)s)"
    )
    parser.add_argument("--partitions", type=positive_int, default=2, help="partitions per tenant (default: %(default)s)")
    parser.add_argument("--trees", type=positive_int, default=300, help="trees of both models (default: %(default)s)")
    parser.add_argument("--depth", type=positive_int, default=6, help="depth of their trees (default: %(default)s)")
    parser.add_argument(
        "--shadow-budget-ms",
        type=positive_int,
        default=1000,
        help="the workers' --shadow-budget-ms (default: %(default)s; the worker's own 50 ms trips on a busy 2-core "
        "machine, and a shadow skipped for 30 s at a time makes the collection wait)",
    )
    parser.add_argument(
        "--keep-topics", action="store_true", help="leave the namespace's topics in place (its name is in the JSON line)"
    )
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.promotion"))


def _soak(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "soak", help="steady load, 3 tenants, 2 workers, random faults; then verify exactly-once over every output and DLQ topic"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default: %(default)s)")
    parser.add_argument(
        "--faults", default="all", help="all, none, or a comma-separated list of: " + ", ".join(k.value for k in FaultKind)
    )
    parser.add_argument("--rate", type=int, default=SOAK_RATE, help="events/s over all tenants (default: %(default)s)")
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=3, help="nodes of the soak's own cluster (default: 3)")
    parser.add_argument("--partitions", type=int, default=SOAK_PARTITIONS, help="per tenant (default: %(default)s)")
    parser.add_argument(
        "--mean-gap-s",
        type=float,
        default=SOAK_MEAN_GAP_S,
        help="mean seconds between the end of one fault and the next (default: %(default)s)",
    )
    parser.add_argument(
        "--pause-s",
        type=float,
        default=SOAK_PAUSE_S,
        help="how long SIGSTOP pauses last (default: %(default)s, past the session and transaction timeouts)",
    )
    parser.add_argument("--seed", type=int, default=SOAK_SEED, help="the fault schedule's seed (default: %(default)s)")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="keep the workers' logs in DIR")
    parser.set_defaults(handler=BenchmarkHandler("muse_stream.bench.soak"))
