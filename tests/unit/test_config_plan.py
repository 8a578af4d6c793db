"""The plan of a config change, per tenant and intent, and which plans need --yes."""

from __future__ import annotations

import pytest
from config_support import deployment, predictor

from muse_stream.config.deployment import DeploymentConfig
from muse_stream.config.plan import Plan, PlanRefused

V1 = deployment()  # bank-a/b/c x card-fraud/account-takeover live fraud-v1; bank-a's with shadow fraud-v2


def test_nothing_to_do_is_an_empty_plan() -> None:
    plan = Plan.between(V1, deployment())
    assert plan.empty and plan.destructive == () and plan.render() == ["no changes"]
    plan.check("f.toml", yes=False)


def test_first_apply_adds_everything_and_removes_nothing() -> None:
    plan = Plan.between(DeploymentConfig(), V1)
    assert plan.destructive == ()
    assert plan.counts() == {"+": 3 + 2 + 2 + 6 + 2, "~": 0, "-": 0}
    lines = plan.render()
    assert lines[:3] == [
        "+ tenant bank-a  default intent card-fraud",
        "    + account-takeover  live fraud-v1, shadows fraud-v2",
        "    + card-fraud  live fraud-v1, shadows fraud-v2",
    ]
    assert (
        "    + fraud-gbm:1  sha256 " + V1.models[0].sha256[:12] + " (uploaded to the models topic unless already there)" in lines
    )
    assert lines[-1] == "Plan: 15 to add, 0 to change, 0 to remove."


def test_moving_live_and_shadow_predictors_is_a_route_change_per_tenant_and_intent() -> None:
    routes = {
        (t, i): ("fraud-v1", ("fraud-v2",) if t == "bank-a" else ())
        for t in ("bank-a", "bank-b", "bank-c")
        for i in ("card-fraud", "account-takeover")
    }
    routes["bank-a", "card-fraud"] = ("fraud-v2", ("fraud-v1",))
    routes["bank-b", "card-fraud"] = ("fraud-v1", ("fraud-v2",))
    plan = Plan.between(V1, deployment(routes))
    assert plan.destructive == ()
    assert plan.render() == [
        "  tenant bank-a",
        "    ~ card-fraud  live fraud-v1 -> fraud-v2; shadows +fraud-v1 -fraud-v2",
        "  tenant bank-b",
        "    ~ card-fraud  shadows +fraud-v2",
        "Plan: 0 to add, 2 to change, 0 to remove.",
    ]


def test_a_predictor_redefined_under_its_name_shows_on_every_route_that_runs_it() -> None:
    redefined = deployment(predictors=(predictor("fraud-v1", 3), predictor("fraud-v2", 2)))
    plan = Plan.between(V1, redefined)
    lines = plan.render()
    assert "    ~ card-fraud  live fraud-v1 redefined (route unchanged)" in lines
    assert any(
        line.startswith("    ~ fraud-v1  fraud-v1:1 on model fraud-gbm:1") and "-> fraud-v1:1 on model fraud-gbm:3" in line
        for line in lines
    )
    # the route notes are not key changes: one predictor changed, one model added, one removed
    assert plan.counts() == {"+": 1, "~": 1, "-": 1} and plan.destructive == ()


def test_removing_a_tenant_intent_or_route_is_refused_without_yes_and_names_them() -> None:
    smaller = deployment(
        {
            ("bank-a", "card-fraud"): ("fraud-v1", ()),
            ("bank-b", "card-fraud"): ("fraud-v1", ()),
            ("bank-b", "account-takeover"): ("fraud-v1", ()),
        }
    )
    plan = Plan.between(V1, smaller)
    assert plan.destructive == (
        "tenant/bank-c",
        "route/bank-a/account-takeover",
        "route/bank-c/account-takeover",
        "route/bank-c/card-fraud",
    )
    assert "- tenant bank-c" in plan.render() and "    - card-fraud  was live fraud-v1" in plan.render()
    with pytest.raises(PlanRefused) as refused:
        plan.check("new.toml", yes=False)
    assert str(refused.value) == (
        "new.toml would remove tenant bank-c, route bank-a/account-takeover, route bank-c/account-takeover, "
        "route bank-c/card-fraud; nothing was published. Check the plan above and add --yes to apply it anyway"
    )
    plan.check("new.toml", yes=True)


def test_an_empty_file_removes_everything_and_is_refused() -> None:
    plan = Plan.between(V1, DeploymentConfig())
    assert plan.counts()["-"] == 15 and "intent/card-fraud" in plan.destructive and len(plan.destructive) == 3 + 2 + 6
    with pytest.raises(PlanRefused, match="empty.toml would remove tenant bank-a, "):
        plan.check("empty.toml", yes=False)
    assert plan.render()[-1] == "Plan: 0 to add, 0 to change, 15 to remove."


def test_removing_only_a_shadow_or_an_unused_predictor_needs_no_yes() -> None:
    routes = {(t, i): ("fraud-v1", ()) for t in ("bank-a", "bank-b", "bank-c") for i in ("card-fraud", "account-takeover")}
    plan = Plan.between(V1, deployment(routes, predictors=(predictor("fraud-v1", 1),)))
    assert plan.destructive == ()
    assert "    - fraud-v2" in plan.render() and "    ~ card-fraud  shadows -fraud-v2" in plan.render()
