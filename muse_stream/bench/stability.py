"""``muse bench stability``: do alert rates hold at every threshold when a model is replaced?

The protocol of Feedzai's public quantile-mapping study, on a seeded synthetic fraud stream that
the command generates itself. Window 0 trains an old and a new XGBoost model (different
hyperparameters and negative-downsampling rates ``b``); window 1 is the fit window of the
mappings; windows 2.. are evaluated walk-forward, strictly after training and fitting. Predictors:

* ``p1``: old model, its own mapping fit once on the fit window, never refit.
* ``p1_5``: new model through the OLD model's mapping (what a swap without refit does).
* ``p2``: new model, mapping refit before each evaluation window on the previous window.
* ``custom``: new model, mapping refit on an expanding window (fit window .. previous window).
* ``default``: new model, mapping fit once on the fit window.
* ``raw``: new model's posterior-corrected scores, no mapping.

For each it prints the median absolute relative alert-rate error ``|observed - target| / target``
at the curve's edges and at a dense grid of other thresholds; AUC and recall at a fixed FPR of the
model's raw score and of the mapped score (transforms are monotone, so they must not move); and the
ECE of the raw and of the posterior-corrected scores against the labels.

The evaluation itself (:func:`walk_forward`) takes per-window scores and labels from anywhere:
``muse backtest --walk-forward`` runs it on a replay's windows of real topic data.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson
import xgboost as xgb

from muse_stream.bench.metrics import expected_calibration_error, recall_at_fpr, roc_auc
from muse_stream.defaults import STABILITY_EVENTS_PER_WINDOW, STABILITY_WINDOWS
from muse_stream.synthetic import FEATURE_NAMES, TrainingParams, generate_stream
from muse_stream.transforms import AlertRateCurve, QuantileMap, posterior_correction

PREDICTORS: tuple[str, ...] = ("p1", "p1_5", "p2", "custom", "default", "raw")
TRAIN_WINDOW = 0
FIT_WINDOW = 1
FIRST_EVAL_WINDOW = 2


@dataclass(frozen=True)
class StabilityConfig:
    """One scenario. ``grid_floor``: thresholds whose target alert rate is lower are not scored."""

    seed: int = 42
    windows: int = STABILITY_WINDOWS
    events_per_window: int = STABILITY_EVENTS_PER_WINDOW
    fraud_rate: float = 0.02
    drift_per_window: float = 0.0
    old: TrainingParams = TrainingParams(n_trees=100, max_depth=4, b=0.1)
    new: TrainingParams = TrainingParams(n_trees=200, max_depth=6, b=0.05)
    fpr: float = 0.01
    grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    grid_floor: float = 0.01


@dataclass
class PredictorFigures:
    """Figures of one predictor over the evaluation windows (AUC/recall/ECE: mean of windows)."""

    name: str
    model: str
    edge_error: float
    grid_error: float
    auc_raw: float
    auc_mapped: float
    recall_raw: float
    recall_mapped: float
    max_abs_auc_change: float
    auc_tie_bound: float
    max_abs_recall_change: float
    ece_raw: float
    ece_corrected: float
    edge_errors_by_edge: dict[str, float] = field(default_factory=dict)


@dataclass
class _Accumulator:
    edge_errors: list[np.ndarray] = field(default_factory=list)
    grid_errors: list[np.ndarray] = field(default_factory=list)
    auc_raw: list[float] = field(default_factory=list)
    auc_mapped: list[float] = field(default_factory=list)
    recall_raw: list[float] = field(default_factory=list)
    recall_mapped: list[float] = field(default_factory=list)
    tie_bound: list[float] = field(default_factory=list)


def _relative_errors(mapped: np.ndarray, thresholds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    observed = (mapped[:, None] >= thresholds[None, :]).mean(axis=0)
    return np.abs(observed - targets) / targets


def _tied_pair_fraction(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of (positive, negative) pairs with equal scores."""
    positive = labels.astype(bool)
    _, inverse = np.unique(scores, return_inverse=True)
    n_pos = np.bincount(inverse, weights=positive.astype(np.float64))
    n_neg = np.bincount(inverse, weights=(~positive).astype(np.float64))
    return float((n_pos * n_neg).sum() / (positive.sum() * (~positive).sum()))


def _auc_tie_bound(raw: np.ndarray, mapped: np.ndarray, labels: np.ndarray) -> float:
    """How far a non-decreasing transform can move the AUC: half the pairs it newly ties.

    A monotone map keeps every strictly ordered pair in order or ties it (worth 1/2), so
    ``|AUC(mapped) - AUC(raw)| <= (tied(mapped) - tied(raw)) / 2``.
    """
    return 0.5 * max(_tied_pair_fraction(mapped, labels) - _tied_pair_fraction(raw, labels), 0.0)


def _score_stream(
    config: StabilityConfig, stream: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    """Train both models on the training window; their raw and posterior-corrected scores per window."""
    x_train, y_train = stream[TRAIN_WINDOW]
    specs = {"old": config.old, "new": config.new}
    raw: dict[str, list[np.ndarray]] = {}
    for i, (name, spec) in enumerate(specs.items()):
        booster = spec.train(x_train, y_train, seed=config.seed + i)
        raw[name] = [
            booster.predict(xgb.DMatrix(x, feature_names=list(FEATURE_NAMES), nthread=2)).astype(np.float64) for x, _ in stream
        ]
    corrected = {name: [posterior_correction(s, specs[name].b) for s in scores] for name, scores in raw.items()}
    return raw, corrected


def run_stability(config: StabilityConfig) -> list[PredictorFigures]:
    """Train, fit and evaluate walk-forward; one :class:`PredictorFigures` per predictor."""
    if config.windows < FIRST_EVAL_WINDOW + 1:
        raise ValueError(f"windows={config.windows}: need a training, a fit and at least one evaluation window")
    stream = generate_stream(
        config.windows,
        config.events_per_window,
        seed=config.seed,
        fraud_rate=config.fraud_rate,
        drift_per_window=config.drift_per_window,
    )
    raw, corrected = _score_stream(config, stream)
    return walk_forward(
        raw,
        corrected,
        [y for _, y in stream],
        fit_window=FIT_WINDOW,
        fpr=config.fpr,
        grid=config.grid,
        grid_floor=config.grid_floor,
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _max_abs_change(a: list[float], b: list[float]) -> float:
    return float(np.max(np.abs(np.subtract(a, b)))) if a else float("nan")


def walk_forward(
    raw: dict[str, list[np.ndarray]],
    corrected: dict[str, list[np.ndarray]],
    labels: list[np.ndarray],
    *,
    fit_window: int,
    fpr: float = StabilityConfig.fpr,
    grid: tuple[float, ...] = StabilityConfig.grid,
    grid_floor: float = StabilityConfig.grid_floor,
    curve: AlertRateCurve | None = None,
) -> list[PredictorFigures]:
    """The study's predictors evaluated on windows ``fit_window + 1 ..``, the mappings fit on
    ``fit_window`` (and, for ``p2``/``custom``, refit on the previous/expanding windows).

    ``raw``/``corrected``: model (``old``, ``new``) -> per-window scores of the same events;
    ``labels``: per window, 0/1, or -1 where unknown (real data: label metrics then use the labelled
    events only, and skip a window without both classes; alert rates always use every event)."""
    if len(labels) < fit_window + 2:
        raise ValueError(f"{len(labels)} windows: need the fit window ({fit_window}) and at least one after it")
    curve = curve or AlertRateCurve.default()
    edges = np.asarray(curve.edges, dtype=np.float64)
    edge_targets = curve.alert_rate_at(edges)
    grid_array = np.asarray([t for t in grid if t not in curve.edges], dtype=np.float64)
    grid_targets = curve.alert_rate_at(grid_array)
    keep = grid_targets >= grid_floor
    grid_array, grid_targets = grid_array[keep], grid_targets[keep]

    map_old_once = QuantileMap.fit(corrected["old"][fit_window], curve)
    map_new_once = QuantileMap.fit(corrected["new"][fit_window], curve)
    model_of = {"p1": "old", "p1_5": "new", "p2": "new", "custom": "new", "default": "new", "raw": "new"}
    acc = {name: _Accumulator() for name in PREDICTORS}
    for w in range(fit_window + 1, len(labels)):
        known = labels[w] >= 0
        y = labels[w][known]
        both = 0 < y.sum() < y.size
        maps = {
            "p1": map_old_once,
            "p1_5": map_old_once,
            "p2": QuantileMap.fit(corrected["new"][w - 1], curve),
            "custom": QuantileMap.fit(np.concatenate(corrected["new"][fit_window:w]), curve),
            "default": map_new_once,
            "raw": None,
        }
        for name, qmap in maps.items():
            model = model_of[name]
            score = raw[model][w]
            mapped = corrected[model][w] if qmap is None else qmap.transform(corrected[model][w])
            a = acc[name]
            a.edge_errors.append(_relative_errors(mapped, edges, edge_targets))
            a.grid_errors.append(_relative_errors(mapped, grid_array, grid_targets))
            if both:
                a.auc_raw.append(roc_auc(score[known], y))
                a.auc_mapped.append(roc_auc(mapped[known], y))
                a.recall_raw.append(recall_at_fpr(score[known], y, fpr))
                a.recall_mapped.append(recall_at_fpr(mapped[known], y, fpr))
                a.tie_bound.append(_auc_tie_bound(score[known], mapped[known], y))

    eval_labels = np.concatenate(labels[fit_window + 1 :])
    known = eval_labels >= 0
    ece = {
        model: (
            expected_calibration_error(np.concatenate(raw[model][fit_window + 1 :])[known], eval_labels[known]),
            expected_calibration_error(np.concatenate(corrected[model][fit_window + 1 :])[known], eval_labels[known]),
        )
        if known.any()
        else (float("nan"), float("nan"))
        for model in ("old", "new")
    }
    figures = []
    for name in PREDICTORS:
        a, model = acc[name], model_of[name]
        edge_errors = np.stack(a.edge_errors)  # (windows, edges)
        figures.append(
            PredictorFigures(
                name=name,
                model=model,
                edge_error=float(np.median(edge_errors)),
                grid_error=float(np.median(np.stack(a.grid_errors))),
                auc_raw=_mean(a.auc_raw),
                auc_mapped=_mean(a.auc_mapped),
                recall_raw=_mean(a.recall_raw),
                recall_mapped=_mean(a.recall_mapped),
                max_abs_auc_change=_max_abs_change(a.auc_mapped, a.auc_raw),
                auc_tie_bound=float(np.max(a.tie_bound)) if a.tie_bound else float("nan"),
                max_abs_recall_change=_max_abs_change(a.recall_mapped, a.recall_raw),
                ece_raw=ece[model][0],
                ece_corrected=ece[model][1],
                edge_errors_by_edge={
                    f"{e:g}": float(v) for e, v in zip(curve.edges, np.median(edge_errors, axis=0), strict=True)
                },
            )
        )
    return figures


def format_table(title: str, figures: list[PredictorFigures], fpr: float) -> str:
    """A fixed-width table: one row per predictor; ``top edge`` is the edge with the lowest alert rate."""
    r = f"R@{fpr:.0%}"
    header = (
        f"{'predictor':<9} {'model':<5} {'edge err':>9} {'top edge':>9} {'grid err':>9} {'AUC raw':>8} "
        f"{'AUC map':>8} {'max|dAUC|':>9} {r + ' raw':>9} {r + ' map':>9} {'ECE raw':>8} {'ECE corr':>8}"
    )
    lines = [title, header, "-" * len(header)]
    for f in figures:
        top_edge = f.edge_errors_by_edge[max(f.edge_errors_by_edge, key=float)]
        lines.append(
            f"{f.name:<9} {f.model:<5} {f.edge_error:>9.1%} {top_edge:>9.1%} {f.grid_error:>9.1%} "
            f"{f.auc_raw:>8.4f} {f.auc_mapped:>8.4f} {f.max_abs_auc_change:>9.1e} {f.recall_raw:>9.4f} "
            f"{f.recall_mapped:>9.4f} {f.ece_raw:>8.4f} {f.ece_corrected:>8.4f}"
        )
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    scenarios = [("stationary", 0.0)]
    if args.drift > 0:
        scenarios.append(("drifting", args.drift))
    report: dict[str, object] = {"benchmark": "stability", "seed": args.seed, "scenarios": {}}
    for label, drift in scenarios:
        config = StabilityConfig(
            seed=args.seed,
            windows=args.windows,
            events_per_window=args.events_per_window,
            fraud_rate=args.fraud_rate,
            drift_per_window=drift,
        )
        started = time.perf_counter()
        figures = run_stability(config)
        elapsed = time.perf_counter() - started
        title = (
            f"\n== {label}: drift/window={drift:g}, {config.windows} windows x {config.events_per_window} events "
            f"(train w0, fit w1, evaluate w2..w{config.windows - 1}), old={config.old}, new={config.new}, "
            f"{elapsed:.1f} s"
        )
        print(format_table(title, figures, config.fpr))
        report["scenarios"][label] = {  # type: ignore[index]
            "config": asdict(config),
            "seconds": round(elapsed, 2),
            "predictors": [asdict(f) for f in figures],
        }
    print(
        "\nedge err / grid err: median |observed - target| / target alert rate over evaluation windows, at "
        "the curve's edges / at 0.05..0.95 (target >= 0.01); top edge: median at the edge with the lowest "
        "target rate; AUC and recall per window, averaged; max|dAUC|: largest per-window |AUC map - AUC raw| "
        "(non-zero only where the map ties scores); ECE (10 bins) of the model's raw and posterior-corrected "
        "scores."
    )
    sys.stdout.flush()
    print(orjson.dumps(report).decode())
    return 0
