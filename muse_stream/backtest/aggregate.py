"""The backtest's figures per tenant x config x period, from a replay dataset's live rows. Pure
(numpy and Arrow, no Kafka).

Why only ``role="live"`` rows: they are what the tenant gets (or would, for a candidate); shadows
are already compared as configs of their own when a replay scores a candidate that makes them live.
Alert rates count scored events (``score >= threshold``); dead-lettered events count in ``events``
and ``dead_letters`` only. Label metrics use the labelled scored events; a metric that needs both
classes (AUC) or a positive (recall) is None where a group has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from muse_stream.bench.metrics import roc_auc
from muse_stream.errors import MuseError
from muse_stream.replay.rows import read_dataset
from muse_stream.transforms import AlertRateCurve

PERIOD_MS = {"hour": 3_600_000, "day": 86_400_000}
ALL_PERIODS = "all"
DEFAULT_ALERT_RATES = (0.01, 0.05, 0.10)
HISTOGRAM_BINS = 20
# Alert rates of the recall/alert-rate curve: dense where alerting is realistic (under 10%).
CURVE_RATES = tuple(
    float(r) for r in np.unique(np.round(np.concatenate([np.geomspace(0.001, 0.1, 21), np.linspace(0.1, 1.0, 10)]), 6))
)


class BacktestError(MuseError):
    """A replay dataset that cannot be backtested as asked."""


@dataclass(frozen=True)
class BacktestSpec:
    """What to compute: the period of the time buckets, the tenant's thresholds, the fixed alert
    rates for recall, and the reference curve giving every threshold its target alert rate."""

    period: str = "day"
    thresholds: tuple[float, ...] = ()  # empty: the curve's edges
    alert_rates: tuple[float, ...] = DEFAULT_ALERT_RATES
    curve: AlertRateCurve = field(default_factory=AlertRateCurve.default)

    def __post_init__(self) -> None:
        if self.period not in PERIOD_MS:
            raise BacktestError(f"period {self.period!r} is not one of {', '.join(PERIOD_MS)}")
        for name, values in (("thresholds", self.thresholds), ("alert rates", self.alert_rates)):
            if not all(0.0 < v < 1.0 for v in values):
                raise BacktestError(f"{name} must lie strictly between 0 and 1, got {', '.join(f'{v:g}' for v in values)}")

    @property
    def tenant_thresholds(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.thresholds))) if self.thresholds else self.curve.edges


@dataclass(frozen=True)
class LiveScores:
    """The live rows of a replay as parallel arrays: ``score`` NaN for a dead letter, ``label`` -1
    where no label is known."""

    tenant: np.ndarray  # str
    config: np.ndarray  # str
    timestamp_ms: np.ndarray  # int64
    score: np.ndarray  # float64
    label: np.ndarray  # int8

    @classmethod
    def from_table(cls, table: pa.Table) -> LiveScores:
        """From a table with the replay schema's tenant, config, role, event_timestamp, score, label."""
        live = table.filter(pc.equal(table["role"], "live"))
        return cls(
            tenant=live["tenant"].to_numpy(zero_copy_only=False).astype(str),
            config=live["config"].to_numpy(zero_copy_only=False).astype(str),
            timestamp_ms=live["event_timestamp"].cast(pa.int64()).to_numpy(),
            score=pc.fill_null(live["score"], math.nan).to_numpy(),
            label=pc.fill_null(live["label"].cast(pa.int8()), -1).to_numpy(),
        )


def open_replay(path: str | Path) -> ds.Dataset:
    """The replay dataset at ``path``, or a one-line error where there is none."""
    path = Path(path)
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        raise BacktestError(f"{path} holds no replay dataset (no Parquet files); write one with `muse replay --out {path}`")
    return read_dataset(path)


def load_live_scores(path: str | Path) -> LiveScores:
    """The live rows of the replay dataset at ``path``."""
    table = open_replay(path).to_table(
        columns=["tenant", "config", "role", "event_timestamp", "score", "label"], filter=pc.field("role") == "live"
    )
    if table.num_rows == 0:
        raise BacktestError(f"the replay dataset {path} has no live rows")
    return LiveScores.from_table(table)


@dataclass
class RateFigure:
    """The observed alert rate at a threshold against the reference's target."""

    threshold: float
    alert_rate: float | None
    target: float
    deviation: float | None  # (observed - target) / target
    precision: float | None = None  # labelled events only
    recall: float | None = None


@dataclass
class GroupFigures:
    """One tenant x config x period (``period`` is the bucket's UTC start, or ``all``)."""

    tenant: str
    config: str
    period: str
    events: int
    scored: int
    dead_letters: int
    edges: list[RateFigure]
    thresholds: list[RateFigure]
    labelled: int
    positives: int
    auc: float | None
    recall_at_alert_rate: dict[str, float | None]
    histogram: list[int] = field(default_factory=list)  # whole-window groups only
    recall_curve: list[tuple[float, float]] = field(default_factory=list)  # (alert rate, recall), whole-window only


@dataclass
class Backtest:
    spec: BacktestSpec
    periods: list[GroupFigures]  # tenant, config, period order
    totals: list[GroupFigures]  # one per tenant x config over the whole window

    @property
    def labelled(self) -> bool:
        return any(g.labelled for g in self.totals)


def recall_at_alert_rate(scores: np.ndarray, labels: np.ndarray, rate: float) -> float | None:
    """Recall when alerting on the top ``rate`` of events by score (at or above the ``ceil(rate*n)``-th
    highest score, so ties at the cut alert together); None without a positive."""
    positives = labels.astype(bool)
    if scores.size == 0 or not positives.any():
        return None
    k = max(1, math.ceil(rate * scores.size))
    cut = np.partition(scores, scores.size - k)[scores.size - k]
    return float(np.count_nonzero(scores[positives] >= cut) / np.count_nonzero(positives))


def _rates(
    scores: np.ndarray,
    labelled: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float],
    targets: np.ndarray,
    with_labels: bool,
) -> list[RateFigure]:
    figures = []
    positives = labels.astype(bool)
    n_pos = int(positives.sum())
    for threshold, target in zip(thresholds, targets.tolist(), strict=True):
        observed = float(np.count_nonzero(scores >= threshold) / scores.size) if scores.size else None
        figure = RateFigure(float(threshold), observed, target, None if observed is None else (observed - target) / target)
        if with_labels and labelled.size:
            alerts = labelled >= threshold
            hits = int(np.count_nonzero(alerts & positives))
            n_alerts = int(np.count_nonzero(alerts))
            figure.precision = hits / n_alerts if n_alerts else None
            figure.recall = hits / n_pos if n_pos else None
        figures.append(figure)
    return figures


def _group(
    tenant: str, config: str, period: str, scores: np.ndarray, labels: np.ndarray, spec: BacktestSpec, *, whole: bool
) -> GroupFigures:
    scored = ~np.isnan(scores)
    live_scores = scores[scored]
    known = scored & (labels >= 0)
    labelled, label_values = scores[known], labels[known]
    edges = np.asarray(spec.curve.edges)
    thresholds = spec.tenant_thresholds
    n_pos = int(label_values.sum())
    both = 0 < n_pos < label_values.size
    group = GroupFigures(
        tenant=tenant,
        config=config,
        period=period,
        events=int(scores.size),
        scored=int(live_scores.size),
        dead_letters=int(scores.size - live_scores.size),
        edges=_rates(live_scores, labelled, label_values, edges.tolist(), spec.curve.alert_rate_at(edges), False),
        thresholds=_rates(live_scores, labelled, label_values, thresholds, spec.curve.alert_rate_at(thresholds), True),
        labelled=int(labelled.size),
        positives=n_pos,
        auc=roc_auc(labelled, label_values) if both else None,
        recall_at_alert_rate={f"{r:g}": recall_at_alert_rate(labelled, label_values, r) for r in spec.alert_rates},
    )
    if whole:
        group.histogram = np.histogram(np.clip(live_scores, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0].tolist()
        if n_pos:
            group.recall_curve = [(rate, recall_at_alert_rate(labelled, label_values, rate) or 0.0) for rate in CURVE_RATES]
    return group


def period_label(bucket: int, period: str) -> str:
    start = datetime.fromtimestamp(bucket * PERIOD_MS[period] / 1000, UTC)
    return start.date().isoformat() if period == "day" else start.strftime("%Y-%m-%dT%H:00Z")


def backtest(scores: LiveScores, spec: BacktestSpec) -> Backtest:
    """Every tenant x config x period's figures, and every tenant x config's over the whole window."""
    tenants, tenant_idx = np.unique(scores.tenant, return_inverse=True)
    configs, config_idx = np.unique(scores.config, return_inverse=True)
    buckets, bucket_idx = np.unique(scores.timestamp_ms // PERIOD_MS[spec.period], return_inverse=True)
    pair = tenant_idx.astype(np.int64) * configs.size + config_idx
    code = pair * buckets.size + bucket_idx
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    periods = []
    starts = np.flatnonzero(np.r_[True, sorted_code[1:] != sorted_code[:-1]]) if code.size else np.array([], int)
    for start, stop in zip(starts, np.r_[starts[1:], code.size], strict=True):
        rows = order[start:stop]
        c = int(sorted_code[start])
        pair_code, bucket = divmod(c, buckets.size)
        t, k = divmod(pair_code, configs.size)
        periods.append(
            _group(
                str(tenants[t]),
                str(configs[k]),
                period_label(int(buckets[bucket]), spec.period),
                scores.score[rows],
                scores.label[rows],
                spec,
                whole=False,
            )
        )
    totals = []
    pair_order = np.argsort(pair, kind="stable")
    sorted_pair = pair[pair_order]
    starts = np.flatnonzero(np.r_[True, sorted_pair[1:] != sorted_pair[:-1]]) if pair.size else np.array([], int)
    for start, stop in zip(starts, np.r_[starts[1:], pair.size], strict=True):
        rows = pair_order[start:stop]
        t, k = divmod(int(sorted_pair[start]), configs.size)
        totals.append(
            _group(str(tenants[t]), str(configs[k]), ALL_PERIODS, scores.score[rows], scores.label[rows], spec, whole=True)
        )
    return Backtest(spec, periods, totals)
