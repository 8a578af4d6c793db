"""The demo is the product in miniature: alert rates hold across a model update; raw scores would not."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from muse_stream import demo
from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.pipeline.worker import WorkerSettings
from muse_stream.replay.run import read_dataset
from muse_stream.synthetic import generate_events
from muse_stream.topics import TopicNames

pytestmark = pytest.mark.kafka


def test_demo_keeps_alert_rates_on_the_reference_across_the_promotion(
    kafka: BrokerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `muse demo` as a new user runs it: from a folder that is not the repo, which it must leave empty.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    summaries: list[dict] = []
    real_run_demo = demo.run_demo

    def recording_run_demo(*args: object, **kwargs: object) -> dict:  # the real demo; keeps its summary
        summaries.append(real_run_demo(*args, **kwargs))  # type: ignore[arg-type]
        return summaries[-1]

    monkeypatch.setattr(demo, "run_demo", recording_run_demo)  # `muse demo` imports it when it runs
    # A zero shadow budget: the shadow is skipped after its first batch, as on a busy machine. Batches
    # of at most 1,000 events make sure there is a batch after the first: a worker that fell behind
    # the demo's producer took all 4,500 events of the shadow phase in one batch of 5,000 (once, in CI).
    monkeypatch.setattr(demo, "WorkerSettings", functools.partial(WorkerSettings, max_batch=1000))
    try:
        assert main(["demo", "--events-per-tenant", "1500", "--shadow-budget-ms", "0", "--keep-topics"]) == 0
        out = capsys.readouterr().out
        assert os.listdir(cwd) == []
        [summary] = summaries
        assert f"muse replay --namespace {summary['namespace']} --all-tenants --config live" in out
        _replay_and_backtest_with_the_demos_labels(summary, tmp_path, capsys)
    finally:
        for kept in summaries:
            delete_namespace(TopicAdmin(kafka.bootstrap), TopicNames(kept["namespace"]))

    rows = summary["rows"]
    assert summary["events"] == summary["results"] == 3 * 3 * 1500
    # Skipping a slow shadow is documented: at most one shadow result per shadowed event, the skipped
    # count explains the rest, and the demo says so.
    assert summary["shadowed_events"] == 1500 + 1500 + 750  # card-fraud events of phase 2
    assert summary["shadow_skipped"] > 0 and summary["shadow_trips"] >= 1
    assert summary["shadow_results"] + summary["shadow_skipped"] == summary["shadowed_events"]
    assert demo.closing_line(summary) in out and f"{summary['shadow_skipped']} skipped" in out
    card = [r for r in rows if r["intent"] == "card-fraud"]
    assert {r["predictor"] for r in card if r["config_version"] < 3} == {"card-v1:1"}
    assert {r["predictor"] for r in card if r["config_version"] == 3} == {"card-v2:2"}
    for row in rows:  # every tenant, every phase: on the reference curve (35% >= 0.5, 5% >= 0.8)
        assert abs(row["alert_rate"]["0.5"] - 0.35) < 0.05, row
        assert abs(row["alert_rate"]["0.8"] - 0.05) < 0.025, row
    for tenant in ("bank-a", "bank-b", "bank-c"):
        before = next(r for r in card if r["tenant"] == tenant and r["config_version"] == 1)
        after = next(r for r in card if r["tenant"] == tenant and r["config_version"] == 3)
        # Raw scores of the retrained model would have more than doubled the alerts at the same threshold.
        assert after["raw_alert_rate"]["0.5"] > 2 * before["raw_alert_rate"]["0.5"]
        assert abs(after["alert_rate"]["0.5"] - before["alert_rate"]["0.5"]) < 0.05


def _replay_and_backtest_with_the_demos_labels(summary: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's generator labels its events late (fraud first): a replay joins those labels, each
    the generator's outcome for its event, and a backtest shows label metrics per tenant."""
    ns, out = summary["namespace"], tmp_path / "demo-replay"
    assert main(["replay", "--namespace", ns, "--all-tenants", "--config", "live", "--out", str(out)]) == 0
    capsys.readouterr()
    rows = read_dataset(out).to_table(filter=pc.field("role") == "live").to_pylist()
    labelled = [r for r in rows if r["label"] is not None]
    assert len(rows) == summary["events"] and len(labelled) == summary["labels"] > 0
    outcomes: dict[int, np.ndarray] = {}
    for row in labelled:  # event ids are <tenant>-<seed>-<index>: the generator's label for that event
        _, seed, index = row["event_id"].rsplit("-", 2)
        y = outcomes.setdefault(int(seed), generate_events(1500, seed=int(seed))[1])
        assert row["label"] == y[int(index)], row["event_id"]
        assert row["labelled_at"] > row["event_timestamp"]
    assert {r["label"] for r in labelled} == {0, 1}
    assert main(["backtest", str(out), "--plot-tenants", "1"]) == 0
    table = capsys.readouterr().out
    assert "with labels (labelled scored events only): AUC" in table
    for tenant in ("bank-a", "bank-b", "bank-c"):
        assert tenant in table.split("with labels", 1)[1], table
