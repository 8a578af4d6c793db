"""``muse bench predictor``: what the predictor DAG costs on top of bare XGBoost.

Scores one batch (default 1,000 events, 300 trees of depth 6, 30 features) through the whole
predictor (registry-loaded booster, ``inplace_predict``, posterior correction, quantile map) and
through bare ``Booster.inplace_predict`` on the same matrix. The two are timed side by side,
interleaved and alternating which goes first, so drift and cache effects hit both alike; the
figure is the ratio of the medians (target: at most 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
import orjson
import xgboost

from muse_stream import synthetic
from muse_stream.models import FileArtifactStore, ModelRegistry
from muse_stream.predictors import Predictor
from muse_stream.predictors.fitting import fit_predictor_spec

TARGET_RATIO = 1.2


@dataclass(frozen=True)
class CostResult:
    batch_size: int
    trees: int
    depth: int
    features: int
    repetitions: int
    bare_median_us: float
    predictor_median_us: float
    bare_p90_us: float
    predictor_p90_us: float
    ratio: float
    pairwise_median_ratio: float
    target: float = TARGET_RATIO

    @property
    def passed(self) -> bool:
        return self.ratio <= self.target


def train_bench_model(*, trees: int, depth: int, b: float, seed: int) -> tuple[xgboost.Booster, np.ndarray]:
    """A model of the requested size and a pool of events to score, from the seeded synthetic data."""
    X, y = synthetic.generate_events(40_000, seed=seed)
    return synthetic.train_model(X, y, n_trees=trees, max_depth=depth, negative_keep_fraction=b, seed=seed), X


def build_predictor(booster: xgboost.Booster, X: np.ndarray, *, b: float, store_dir: str) -> Predictor:
    """Register the model and fit the map exactly as production does, then load through the cache."""
    registry = ModelRegistry(FileArtifactStore(store_dir))
    record = registry.register(bytes(booster.save_raw("ubj")), name="bench", version="1", b=b)
    spec = fit_predictor_spec(record, registry.store, X, name="bench", version="1")
    return Predictor.from_spec(spec, registry.store)


def measure(predictor: Predictor, matrix: np.ndarray, *, repetitions: int, warmup: int) -> tuple[list[int], list[int]]:
    """Interleaved nanosecond timings (bare, predictor); the order alternates every repetition."""
    booster = predictor.booster

    def bare() -> None:
        booster.inplace_predict(matrix, validate_features=False)

    def full() -> None:
        predictor.score_batch(matrix)

    for _ in range(warmup):
        bare()
        full()
    bare_ns: list[int] = []
    full_ns: list[int] = []
    for rep in range(repetitions):
        order = ((bare, bare_ns), (full, full_ns)) if rep % 2 == 0 else ((full, full_ns), (bare, bare_ns))
        for run, sink in order:
            start = time.perf_counter_ns()
            run()
            sink.append(time.perf_counter_ns() - start)
    return bare_ns, full_ns


def run_benchmark(*, batch_size: int, trees: int, depth: int, repetitions: int, warmup: int, seed: int) -> CostResult:
    b = 0.1
    booster, X = train_bench_model(trees=trees, depth=depth, b=b, seed=seed)
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as store_dir:
        predictor = build_predictor(booster, X, b=b, store_dir=store_dir)
        matrix = np.ascontiguousarray(X[:batch_size], dtype=np.float32)
        bare_ns, full_ns = measure(predictor, matrix, repetitions=repetitions, warmup=warmup)

    def p90(values: list[int]) -> float:
        return float(np.percentile(values, 90)) / 1e3

    bare_median = statistics.median(bare_ns) / 1e3
    full_median = statistics.median(full_ns) / 1e3
    return CostResult(
        batch_size=batch_size,
        trees=trees,
        depth=depth,
        features=matrix.shape[1],
        repetitions=repetitions,
        bare_median_us=round(bare_median, 1),
        predictor_median_us=round(full_median, 1),
        bare_p90_us=round(p90(bare_ns), 1),
        predictor_p90_us=round(p90(full_ns), 1),
        ratio=round(full_median / bare_median, 4),
        pairwise_median_ratio=round(statistics.median(f / b_ for f, b_ in zip(full_ns, bare_ns, strict=True)), 4),
    )


def handle(args: argparse.Namespace) -> int:
    result = run_benchmark(
        batch_size=args.batch_size,
        trees=args.trees,
        depth=args.depth,
        repetitions=args.repetitions,
        warmup=args.warmup,
        seed=args.seed,
    )
    print(
        f"predictor cost: {result.batch_size} events, {result.trees} trees, depth {result.depth}, "
        f"{result.features} features, {result.repetitions} interleaved repetitions"
    )
    print(f"{'path':<34}{'median us':>12}{'p90 us':>12}")
    print(f"{'bare xgboost inplace_predict':<34}{result.bare_median_us:>12.1f}{result.bare_p90_us:>12.1f}")
    print(f"{'predictor.score_batch (full DAG)':<34}{result.predictor_median_us:>12.1f}{result.predictor_p90_us:>12.1f}")
    verdict = "within" if result.passed else "ABOVE"
    print(
        f"ratio of medians {result.ratio:.3f} (pairwise median {result.pairwise_median_ratio:.3f}); "
        f"{verdict} the {result.target}x target"
    )
    print(orjson.dumps({"bench": "predictor", **asdict(result), "passed": result.passed}).decode())
    return 0
