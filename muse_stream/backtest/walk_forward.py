"""Walk-forward over real history: the quantile-mapping study's predictors (``p1``, ``p1_5``, ``p2``,
``custom``, ``default``, ``raw``; see :mod:`muse_stream.bench.stability`, whose
:func:`~muse_stream.bench.stability.walk_forward` this runs) on a replay's windows of real topic
data instead of a synthetic stream. Pure (Arrow and numpy).

The replay scored every event with the old config and the new one; per tenant, the events both
scored (joined on event id) are cut into windows by ``period`` of their timestamp. The first window
is the fit window (the models are already trained), the rest are evaluated. ``raw_score`` and
``corrected_score`` are the live predictor's own stages, so an analyst sees what swapping the model
without a refit (``p1_5``), with a refit on the previous window (``p2``) and so on would have done to
each tenant's alert rates in the past.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from muse_stream.backtest.aggregate import PERIOD_MS, BacktestError, open_replay, period_label
from muse_stream.bench.stability import PredictorFigures, format_table, walk_forward
from muse_stream.transforms import TransformInputError

COLUMNS = ["tenant", "event_id", "config", "role", "event_timestamp", "raw_score", "corrected_score", "label"]


@dataclass
class TenantWalkForward:
    tenant: str
    windows: list[str]  # period labels; the first is the fit window
    events: list[int]
    labelled: list[int]
    figures: list[PredictorFigures]


def paired_scores(table: pa.Table, old: str, new: str) -> pa.Table:
    """The events both configs scored live: tenant, event_id, event_timestamp, label and the old and
    new raw and corrected scores."""
    configs = set(pc.unique(table["config"]).to_pylist())
    missing = [tag for tag in (old, new) if tag not in configs]
    if missing:
        raise BacktestError(
            f"config(s) {', '.join(missing)} are not in the replay (it has {', '.join(sorted(configs))}); "
            "replay with both, e.g. `muse replay --config-version N --config live`, or pick --old/--new from these"
        )
    scored = table.filter(pc.and_(pc.equal(table["role"], "live"), pc.is_valid(table["raw_score"])))
    sides = []
    for tag, side in ((old, "old"), (new, "new")):
        rows = scored.filter(pc.equal(scored["config"], tag))
        sides.append(
            rows.select(["tenant", "event_id", "event_timestamp", "label", "raw_score", "corrected_score"]).rename_columns(
                ["tenant", "event_id", "event_timestamp", "label", f"{side}_raw", f"{side}_corrected"]
            )
        )
    return sides[0].join(sides[1].drop_columns(["event_timestamp", "label"]), keys=["tenant", "event_id"], join_type="inner")


def walk_forward_tenants(table: pa.Table, old: str, new: str, period: str, fpr: float = 0.01) -> list[TenantWalkForward]:
    """One :class:`TenantWalkForward` per tenant with at least two windows (a fit and an evaluation one)."""
    paired = paired_scores(table, old, new)
    out = []
    for tenant in sorted(pc.unique(paired["tenant"]).to_pylist()):
        rows = paired.filter(pc.equal(paired["tenant"], tenant))
        stamps = rows["event_timestamp"].cast(pa.int64()).to_numpy()
        order = np.argsort(stamps, kind="stable")
        buckets = stamps[order] // PERIOD_MS[period]
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        windows = np.split(order, cuts)
        if len(windows) < 2:
            continue
        column = lambda name, rows=rows: rows[name].to_numpy(zero_copy_only=False)  # noqa: E731
        labels = pc.fill_null(rows["label"].cast(pa.int8()), -1).to_numpy()
        raw = {side: [column(f"{side}_raw")[w] for w in windows] for side in ("old", "new")}
        corrected = {side: [column(f"{side}_corrected")[w] for w in windows] for side in ("old", "new")}
        names = [period_label(int(stamps[w[0]] // PERIOD_MS[period]), period) for w in windows]
        try:
            figures = walk_forward(raw, corrected, [labels[w] for w in windows], fit_window=0, fpr=fpr)
        except TransformInputError as error:
            raise BacktestError(
                f"tenant {tenant}: cannot fit a mapping on its windows ({len(windows[0]):,} events on {names[0]}, "
                f"the fit window): {error}; walk forward with a longer --period"
            ) from None
        out.append(
            TenantWalkForward(tenant, names, [len(w) for w in windows], [int((labels[w] >= 0).sum()) for w in windows], figures)
        )
    return out


def load_walk_forward(path: str | Path, old: str, new: str, period: str) -> list[TenantWalkForward]:
    table = open_replay(path).to_table(columns=COLUMNS, filter=pc.field("role") == "live")
    results = walk_forward_tenants(table, old, new, period)
    if not results:
        raise BacktestError(
            f"no tenant of {path} has events in two or more {period}s scored by both {old} and {new}: "
            f"a walk-forward needs a fit {period} and at least one after it; try --period hour or a longer replay"
        )
    return results


def format_walk_forward(results: list[TenantWalkForward], old: str, new: str, fpr: float = 0.01) -> str:
    parts = []
    for result in results:
        title = (
            f"\n== {result.tenant}: old={old}, new={new}; fit on {result.windows[0]} ({result.events[0]:,} events), "
            f"evaluated on {len(result.windows) - 1} window(s) {result.windows[1]}..{result.windows[-1]} "
            f"({sum(result.events[1:]):,} events, {sum(result.labelled[1:]):,} labelled)"
        )
        parts.append(format_table(title, result.figures, fpr))
    parts.append(
        "\np1: old model, its mapping fit on the fit window; p1_5: new model through the old model's mapping "
        "(a swap without refit); p2: new model, mapping refit on the previous window; custom: refit on all windows "
        "so far; default: fit once on the fit window; raw: no mapping. edge/grid err: median |observed - target| / "
        "target alert rate; AUC, recall and ECE on labelled events (nan: no window with both classes)."
    )
    return "\n".join(parts)


def walk_forward_summary(results: list[TenantWalkForward], old: str, new: str) -> dict[str, Any]:
    return {"old": old, "new": new, "tenants": [asdict(r) for r in results]}
