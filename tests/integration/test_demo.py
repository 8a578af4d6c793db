"""The demo is the product in miniature: alert rates hold across a model update; raw scores would not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.demo import run_demo

pytestmark = pytest.mark.kafka
TOPOLOGY = Path(__file__).parents[2] / "topologies" / "demo"


def test_demo_keeps_alert_rates_on_the_reference_across_the_promotion(kafka: BrokerHandle, tmp_path: Path) -> None:
    topology = tmp_path / "demo"
    shutil.copytree(TOPOLOGY, topology, ignore=shutil.ignore_patterns("models", "predictors"))
    summary = run_demo(kafka.bootstrap, topology, events_per_tenant=1500, say=lambda line: None)

    rows = summary["rows"]
    assert summary["events"] == 3 * 3 * 1500
    assert summary["shadow_results"] == 1500 + 1500 + 750  # card-fraud events of phase 2
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
