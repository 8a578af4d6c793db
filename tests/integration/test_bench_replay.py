"""`muse bench replay` end to end on the real broker: a replay in its own process, the worker and
its two ceilings (the workers' scoring code in memory, bare XGBoost) on the same backlog, one JSON line of figures, and no topics left behind."""

from __future__ import annotations

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin

pytestmark = pytest.mark.kafka


def test_bench_replay_prints_the_rates_and_ceilings_and_the_replays_peak_rss(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    # Enough work that the drain outlasts a progress sample delayed by a loaded machine (the bench refuses a
    # backlog drained between two samples as too fast to time: 60,000 events, a drain of under 2 s at the
    # worker's rate here, failed so once in CI).
    assert main(["bench", "replay", "--events", "200000", "--partitions", "2", "--trees", "60", "--depth", "5"]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    assert figures["bench"] == "replay" and figures["events"] == 200000
    assert set(figures["events_per_s"]) == {
        "muse replay",
        "muse worker",
        "the workers' scoring code in memory",
        "bare xgboost inplace_predict",
    }
    assert all(rate > 0 for rate in figures["events_per_s"].values())
    assert 50 < figures["peak_rss_mib"]["muse replay"] < 2000 and figures["dataset_mib"] > 0
    assert "replay peak RSS < 600 MiB" in figures["goals"] and "replay >= 2x worker" in figures["goals"]
    assert "muse replay (Kafka -> Parquet, 1 config, 1 process)" in out
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # the namespace is deleted
