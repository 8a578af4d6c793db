"""`muse bench promotion`, short form, on the real broker: every step of a model update runs under a
steady load, the promoted version is live in both workers, no event is lost or duplicated, and the
post-promotion alert rates it prints are those of the results on the output topics."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.admin import TopicAdmin, delete_namespace
from muse_stream.events import ScoreResult
from muse_stream.topics import TopicNames
from muse_stream.transforms import AlertRateCurve
from tests.support.kafka_io import read_committed

pytestmark = pytest.mark.kafka
TENANTS = ("bank-a", "bank-b", "bank-c")
STEPS = ["add_shadow", "collect", "fit", "plan", "promote", "live_in_every_worker"]


def test_bench_promotion_times_every_step_and_verifies_exactly_once(
    kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MUSE_BOOTSTRAP", kafka.bootstrap)
    # 30,000 shadow scores, 10,000 a route: fewer would leave the plan's expected rate at the 0.8 edge
    # (5% of a route's scores) noisy enough to trip its 20% check now and then.
    argv = ["bench", "promotion", "--shadow-events", "30000", "--rate", "3000", "--fresh-events", "3000"]
    argv += ["--trees", "30", "--depth", "4"]
    assert main([*argv, "--keep-topics"]) == 0
    out = capsys.readouterr().out
    figures = orjson.loads(out.strip().splitlines()[-1])
    names = TopicNames(figures["namespace"])
    try:
        records = read_committed(
            kafka.bootstrap, [names.output_topic(t) for t in TENANTS], expect=figures["exactly_once"]["results"]
        )
    finally:
        delete_namespace(TopicAdmin(kafka.bootstrap), names)

    assert figures["bench"] == "promotion" and figures["tenants"] == 3 and figures["workers"] == 2
    assert list(figures["steps"]) == STEPS and all(seconds > 0 for seconds in figures["steps"].values())
    assert figures["update_seconds"] == pytest.approx(sum(figures["steps"].values()), abs=0.01)
    for row in ("add fraud-v2 as a shadow (config apply, version 2)", "collect 30,000 shadow scores", "live in every worker (2)"):
        assert row in out
    version = figures["promoted_version"]
    assert version == 3 and figures["fitted"] == "fraud:2-fit1"
    assert figures["worker_versions"] == {"w1": version, "w2": version}
    assert figures["goals"]["promoted version live in every worker"] is True

    once = figures["exactly_once"]
    assert once["produced"] >= 30_000 and once["results"] == once["produced"] == len(records)
    assert once["lost"] == once["duplicated"] == once["mixed"] == once["config_regressions"] == 0
    assert figures["goals"]["0 lost, 0 duplicated, 0 mixed"] is True
    assert f"exactly once over {once['produced']:,} events produced: {once['results']:,} results" in out

    # The printed alert rates are those of the promoted predictor's results on the output topics.
    results = [ScoreResult.model_validate_json(value) for _, _, value in records]
    fresh = [r for r in results if r.config_version == version and r.predictor_id == figures["fitted_id"]]
    assert len(fresh) == figures["fresh_results"] >= 3000
    curve = AlertRateCurve.default()
    for who in (*TENANTS, "all tenants"):
        scores = np.array([r.score for r in fresh if who in (r.tenant, "all tenants")])
        for edge, target in zip(curve.edges, curve.rates, strict=True):
            rate = float(np.mean(scores >= edge))
            assert figures["fresh_alert_rates"][who][f"{edge:g}"] == pytest.approx(rate, abs=1e-6)
            assert figures["fresh_relative_error"][who][f"{edge:g}"] == pytest.approx((rate - target) / target, abs=1e-4)
    # Every result before the promotion came from fraud-v1, every one after from the refit.
    assert {r.predictor_version for r in results if r.config_version < version} == {"1"}
    assert {r.predictor_version for r in results if r.config_version == version} == {"2-fit1"}
