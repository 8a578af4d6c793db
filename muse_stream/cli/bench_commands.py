"""``muse bench ...``: each benchmark module under ``muse_stream.bench`` exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES: tuple[str, ...] = (
    "muse_stream.bench.predictor_cost",
    "muse_stream.bench.stability",
    "muse_stream.bench.throughput",
    "muse_stream.bench.latency",
    "muse_stream.bench.tenants",
    "muse_stream.bench.noisy_neighbour",
    "muse_stream.bench.replay",
    "muse_stream.bench.promotion",
    "muse_stream.bench.soak",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks that print figures")
    bench_subparsers = bench.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    for module_name in BENCH_MODULES:
        importlib.import_module(module_name).register(bench_subparsers)
