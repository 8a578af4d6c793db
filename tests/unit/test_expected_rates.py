"""A plan's expected alert rates for a changed live predictor, and the --yes it needs when they miss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from config_support import deployment, predictor

from muse_stream.config.deployment import DeploymentConfig, TenantConfig
from muse_stream.config.expected_rates import RecentScores, expectations
from muse_stream.config.plan import Plan, PlanRefused
from muse_stream.predictors import PredictorSpec
from muse_stream.transforms import AlertRateCurve, QuantileMap

ROUTE = ("bank-a", "card-fraud")
rng = np.random.default_rng(4)


def on_curve(n: int) -> np.ndarray:
    """Scores whose alert rates at the default curve's edges are its targets."""
    return QuantileMap.fit(rng.random(50_000), AlertRateCurve.default()).transform(rng.random(n))


def promoted() -> tuple[DeploymentConfig, DeploymentConfig]:
    """Today's deployment, and it with fraud-v2 promoted on bank-a/card-fraud, whose tenant declares thresholds."""
    old = deployment()
    routes = {(r.tenant, r.intent): (r.live, r.shadows) for r in old.routes}
    routes[ROUTE] = ("fraud-v2", ("fraud-v1",))
    new = deployment(routes, predictors=old.predictors)
    tenants = tuple(t.model_copy(update={"thresholds": (0.3, 0.9)}) if t.name == "bank-a" else t for t in new.tenants)
    return old, new.model_copy(update={"tenants": tenants})


def test_a_promotion_shows_the_rates_now_and_after_at_edges_and_tenant_thresholds() -> None:
    old, new = promoted()
    v1, v2 = old.predictor("fraud-v1").id, old.predictor("fraud-v2").id
    recent = RecentScores(live={(*ROUTE, v1): on_curve(4000)}, shadow={(*ROUTE, v2): (on_curve(4000), rng.random(4000))})
    [found] = expectations(old, new, recent)
    assert found.route == "bank-a/card-fraud" and found.old == "fraud-v1:1" and found.new == "fraud-v2:1"
    assert found.thresholds == [0.2, 0.3, 0.5, 0.6, 0.8, 0.9]
    assert found.now is not None and found.now.n == 4000 and found.now.source == "live results"
    assert found.after is not None and found.after.source == "shadow scores" and found.off_target(0.2) == []
    plan = replace(Plan.between(old, new), expectations=(found,))
    lines = plan.render()
    assert lines[0] == "~ tenant bank-a  thresholds [] -> [0.3, 0.9]"
    assert "  alert rates" in lines
    assert any(
        line.startswith(
            "    expected alert rates of bank-a/card-fraud on recent traffic: now fraud-v1:1: "
            "4000 live results; after fraud-v2:1: 4000 shadow scores"
        )
        for line in lines
    )
    assert any(line.split()[:2] == ["0.9", "tenant"] for line in lines)
    plan.check("promoting fraud-v2", yes=False)  # on target: no question asked


def test_a_new_live_predictor_off_target_needs_yes_and_the_refusal_gives_the_figures() -> None:
    old, new = promoted()
    v2 = old.predictor("fraud-v2").id
    off = on_curve(4000) ** 0.5  # every score higher: more alerts at every edge
    recent = RecentScores(shadow={(*ROUTE, v2): (off, rng.random(4000))})
    plan = replace(Plan.between(old, new), expectations=expectations(old, new, recent), tolerance=0.2)
    assert plan.destructive == () and plan.miscalibrated == ("bank-a/card-fraud",)
    assert any("off target by more than 20%" in line for line in plan.render())
    with pytest.raises(
        PlanRefused,
        match=r"^promoting fraud-v2 would make fraud-v2:1 live on bank-a/card-fraud, "
        r"expected to alert .* at 0.8 against 0.0500 \(off by more than 20%\); "
        r"nothing was published",
    ):
        plan.check("promoting fraud-v2", yes=False)
    plan.check("promoting fraud-v2", yes=True)
    # Too few scores to judge: shown, not refused.
    few = RecentScores(shadow={(*ROUTE, v2): (off[:500], rng.random(500))})
    plan = replace(Plan.between(old, new), expectations=expectations(old, new, few))
    assert plan.miscalibrated == () and any("not judged" in line for line in plan.render())


def test_a_refitted_map_is_judged_on_the_corrected_scores_of_a_shadow_of_the_same_model() -> None:
    old, _ = promoted()
    v2 = old.predictor("fraud-v2")
    corrected = rng.beta(1, 12, 6000)
    refit = PredictorSpec.model_validate(
        {
            **v2.spec.model_dump(mode="json"),
            "version": "1-fit1",
            "quantile_map": QuantileMap.fit(corrected, AlertRateCurve.default()).to_dict(),
        }
    )
    routes = {(r.tenant, r.intent): (r.live, r.shadows) for r in old.routes}
    routes[ROUTE] = ("fraud-v2", ("fraud-v1",))
    new = deployment(routes, predictors=(old.predictor("fraud-v1"), v2.model_copy(update={"spec": refit})))
    recent = RecentScores(shadow={(*ROUTE, v2.id): (rng.random(6000), corrected)})
    found = [e for e in expectations(old, new, recent) if e.route == "bank-a/card-fraud"]
    assert found[0].after is not None and found[0].after.source == "scores of shadow fraud-v2:1 through the new map"
    assert found[0].off_target(0.05) == []
    # A route whose live predictor is only redefined (same name, new spec) is a change of live predictor too.
    assert {e.route for e in expectations(old, new, recent)} >= {"bank-a/card-fraud"}


def test_unchanged_live_predictors_expect_nothing_and_tenant_thresholds_must_be_scores() -> None:
    assert expectations(deployment(), deployment(), RecentScores()) == ()
    assert expectations(DeploymentConfig(), deployment(), RecentScores()) == ()  # a first apply: nothing to go by
    with pytest.raises(ValueError, match=r"thresholds \[1.5\] are not scores strictly between 0 and 1"):
        TenantConfig(name="bank-a", default_intent="card-fraud", thresholds=(0.5, 1.5))
    assert TenantConfig(name="bank-a", default_intent="card-fraud", thresholds=(0.8, 0.5, 0.8)).thresholds == (0.5, 0.8)
    assert predictor("fraud-v1", 1).version == "1"
