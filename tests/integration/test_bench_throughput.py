"""`muse bench throughput --repeat` end to end on the real broker, short: the muse worker, the
pass-through worker and bare XGBoost, each round's rate kept, medians reported, one JSON line, and no
topics left behind. (The Quix apps are checked on their own in test_quix_baseline.py.)"""

from __future__ import annotations

import statistics

import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin

pytestmark = pytest.mark.kafka


def test_bench_throughput_repeated_reports_the_median_of_each_paths_rounds(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    before = set(TopicAdmin(kafka.bootstrap).existing_topics())
    # Enough events that each drain spans several progress samples even when a loaded machine delays
    # them: 40,000 and then 100,000 failed now and then in CI as "too fast to time" (most of those
    # delays were committed-offsets reads waiting for stable offsets, since fixed).
    args = ["--events", "200000", "--trees", "30", "--depth", "4", "--skip-faust", "--skip-quix", "--repeat", "3"]
    assert main(["bench", "throughput", *args]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    assert figures["repeat"] == 3
    # The default warm-up round ran first and counts in no figure (each path has 3 rounds below).
    assert figures["warmup_rounds"] == 1 and "warm-up round 1 of 1 (counted in no figure)" in out
    paths = ["muse worker", "pass-through worker", "bare xgboost inplace_predict"]
    assert list(figures["events_per_s"]) == paths
    for path in paths:
        rounds = figures["rounds_events_per_s"][path]
        assert len(rounds) == 3 and all(rate > 0 for rate in rounds)
        assert abs(figures["events_per_s"][path] - statistics.median(rounds)) <= 1  # both rounded in the JSON
    # A ratio is the median of the per-round ratios, not the ratio of the medians.
    per_round = [m / p for m, p in zip(*(figures["rounds_events_per_s"][k] for k in paths[:2]), strict=True)]
    assert figures["ratios"]["to_passthrough"] == pytest.approx(statistics.median(per_round), abs=0.003)
    assert out.count("round ") >= 3 and "range events/s" in out
    left = set(TopicAdmin(kafka.bootstrap).existing_topics()) - before - {"__consumer_offsets", "__transaction_state"}
    assert not left  # every namespace is deleted
