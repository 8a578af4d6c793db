"""Promotion derived from the live config: the shadow goes live, the old live predictor becomes a shadow."""

from __future__ import annotations

import pytest
from config_support import deployment, predictor

from muse_stream.config.plan import Plan
from muse_stream.config.promotion import PromotionError, promote, routes_of_intent

P3 = (predictor("fraud-v1", 1), predictor("fraud-v2", 2), predictor("fraud-v3", 3))
LIVE = deployment(
    {
        ("bank-a", "card-fraud"): ("fraud-v1", ("fraud-v3", "fraud-v2")),
        ("bank-b", "card-fraud"): ("fraud-v1", ("fraud-v2",)),
        ("bank-b", "account-takeover"): ("fraud-v1", ()),
    },
    predictors=P3,
)


def route(config, key: str):  # type: ignore[no-untyped-def]
    return next(r for r in config.routes if r.key == key)


def test_the_shadow_goes_live_and_the_old_live_predictor_becomes_the_first_shadow() -> None:
    promoted = promote(LIVE, "fraud-v2", [("bank-a", "card-fraud")])
    new = route(promoted, "route/bank-a/card-fraud")
    assert (new.live, new.shadows) == ("fraud-v2", ("fraud-v1", "fraud-v3"))
    # nothing else changes: the plan is one route change, not destructive
    plan = Plan.between(LIVE, promoted)
    assert plan.counts() == {"+": 0, "~": 1, "-": 0} and plan.destructive == ()
    assert "    ~ card-fraud  live fraud-v1 -> fraud-v2; shadows +fraud-v1 -fraud-v2" in plan.render()
    # promoting the old one back restores the original live predictor (shadows reordered)
    back = route(promote(promoted, "fraud-v1", [("bank-a", "card-fraud")]), "route/bank-a/card-fraud")
    assert (back.live, set(back.shadows)) == ("fraud-v1", {"fraud-v2", "fraud-v3"})


def test_all_tenants_promotes_every_route_of_the_intent() -> None:
    routes = routes_of_intent(LIVE, "card-fraud")
    assert routes == [("bank-a", "card-fraud"), ("bank-b", "card-fraud")]
    promoted = promote(LIVE, "fraud-v2", routes)
    assert [route(promoted, f"route/{t}/card-fraud").live for t in ("bank-a", "bank-b")] == ["fraud-v2", "fraud-v2"]
    assert route(promoted, "route/bank-b/account-takeover") == route(LIVE, "route/bank-b/account-takeover")
    with pytest.raises(PromotionError, match="no tenant has a route for intent 'login'"):
        routes_of_intent(LIVE, "login")


def test_promoting_what_is_already_live_changes_nothing() -> None:
    assert promote(LIVE, "fraud-v1", [("bank-b", "account-takeover")]).bodies() == LIVE.bodies()


def test_refusals_name_every_route_that_cannot_be_promoted_and_say_what_to_do() -> None:
    with pytest.raises(PromotionError) as error:
        promote(LIVE, "fraud-v3", routes_of_intent(LIVE, "card-fraud") + [("bank-b", "account-takeover")])
    message = str(error.value)
    assert "fraud-v3 is not a shadow of route/bank-b/card-fraud (live fraud-v1, shadows [fraud-v2])" in message
    assert "route/bank-b/account-takeover" in message and "add it as a shadow first" in message
    assert "route/bank-a/card-fraud" not in message
    with pytest.raises(PromotionError, match="predictor fraud-v9 is not in the live config"):
        promote(LIVE, "fraud-v9", [("bank-a", "card-fraud")])
    with pytest.raises(PromotionError, match=r"route/bank-c/card-fraud not in the live config \(routes: route/bank-a"):
        promote(LIVE, "fraud-v2", [("bank-c", "card-fraud")])
