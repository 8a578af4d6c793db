"""Walk-forward over a replay's windows: the stability study's own evaluation on real-shaped rows."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from muse_stream.backtest.aggregate import BacktestError
from muse_stream.backtest.walk_forward import format_walk_forward, walk_forward_tenants
from muse_stream.bench import stability
from muse_stream.bench.metrics import roc_auc

DAY = 86_400_000
T0 = 1_772_323_200_000  # 2026-03-01T00:00Z
WINDOWS, PER_WINDOW = 4, 3000


def replay_table(seed: int = 1) -> tuple[pa.Table, dict[str, np.ndarray], np.ndarray]:
    """One tenant, four days; the new model's scores are the old one's squared root (same ranking,
    higher scores: a swap without refit alerts on far more events); a third of events labelled."""
    rng = np.random.default_rng(seed)
    n = WINDOWS * PER_WINDOW
    labels = (rng.random(n) < 0.1).astype(np.int8)
    old = np.clip(rng.beta(2, 8, n) + 0.3 * labels, 1e-4, 1 - 1e-4)
    new = np.sqrt(old)
    known = rng.random(n) < 0.33
    stamps = T0 + (np.arange(n) // PER_WINDOW) * DAY + np.arange(n) % PER_WINDOW
    rows = []
    for config, scores in (("v1", old), ("cand", new)):
        rows.append(
            pa.table(
                {
                    "tenant": ["bank-a"] * n,
                    "event_id": [f"e{i}" for i in range(n)],
                    "config": [config] * n,
                    "role": ["live"] * n,
                    "event_timestamp": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
                    "raw_score": scores,
                    "corrected_score": scores,
                    "label": pa.array(np.where(known, labels, 0), pa.int8(), mask=~known),
                }
            )
        )
    # A shadow row and a dead letter: neither is a live score of both configs.
    extra = rows[0].slice(0, 2).to_pydict()
    extra["role"] = ["shadow", "live"]
    extra["event_id"] = ["e0", "only-v1"]
    extra["raw_score"] = [0.99, None]
    return (
        pa.concat_tables([*rows, pa.table(extra, schema=rows[0].schema)]),
        {"old": old, "new": new},
        np.where(known, labels, -1),
    )


def test_walk_forward_runs_the_stability_protocol_on_the_replay_windows() -> None:
    table, scores, labels = replay_table()
    [result] = walk_forward_tenants(table, "v1", "cand", "day")
    assert result.tenant == "bank-a" and result.windows == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert result.events == [PER_WINDOW] * WINDOWS
    # The very figures of the study's evaluation, called on the windows directly.
    split = lambda a: np.split(a, WINDOWS)  # noqa: E731
    expected = stability.walk_forward(
        {m: split(s) for m, s in scores.items()}, {m: split(s) for m, s in scores.items()}, split(labels), fit_window=0
    )
    assert [f.name for f in result.figures] == list(stability.PREDICTORS)
    for got, want in zip(result.figures, expected, strict=True):
        assert got.edge_error == want.edge_error and got.auc_raw == want.auc_raw
    by = {f.name: f for f in result.figures}
    assert by["p1_5"].edge_error > 5 * by["p2"].edge_error  # the swap without refit misses the targets
    assert by["p1"].edge_error < 0.1 and by["default"].edge_error < 0.1
    known = labels[PER_WINDOW : 2 * PER_WINDOW] >= 0
    first_eval_auc = roc_auc(scores["old"][PER_WINDOW : 2 * PER_WINDOW][known], labels[PER_WINDOW : 2 * PER_WINDOW][known])
    assert by["p1"].auc_raw == pytest.approx(
        np.mean(
            [first_eval_auc]
            + [
                roc_auc(
                    scores["old"][w * PER_WINDOW : (w + 1) * PER_WINDOW][labels[w * PER_WINDOW : (w + 1) * PER_WINDOW] >= 0],
                    labels[w * PER_WINDOW : (w + 1) * PER_WINDOW][labels[w * PER_WINDOW : (w + 1) * PER_WINDOW] >= 0],
                )
                for w in (2, 3)
            ]
        )
    )
    text = format_walk_forward([result], "v1", "cand")
    assert "bank-a: old=v1, new=cand; fit on 2026-03-01 (3,000 events)" in text and "p1_5" in text


def test_without_labels_the_label_figures_are_nan_and_a_missing_config_is_an_error() -> None:
    table, _, _ = replay_table()
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.nulls(table.num_rows, pa.int8()))
    [result] = walk_forward_tenants(table, "v1", "cand", "day")
    assert all(math.isnan(f.auc_raw) and math.isnan(f.ece_raw) for f in result.figures)
    assert not math.isnan(result.figures[0].edge_error)
    with pytest.raises(BacktestError, match=r"config\(s\) v9 are not in the replay \(it has cand, v1\)"):
        walk_forward_tenants(table, "v9", "cand", "day")
    assert (
        walk_forward_tenants(
            table.filter(pa.compute.less(table["event_timestamp"].cast(pa.int64()), T0 + DAY)), "v1", "cand", "day"
        )
        == []
    )  # one window: nothing to evaluate
