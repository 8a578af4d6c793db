"""Routing by intent through an immutable snapshot: decisions, errors, caching, model sharing."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest
from config_support import artifacts, deployment, predictor, warm_matrix

from muse_stream.config.snapshot import ConfigSnapshot, clear_predictor_cache
from muse_stream.models import (
    FileArtifactStore,
    booster_load_counts,
    clear_booster_cache,
)
from muse_stream.routing import RoutingError, UnknownIntent, UnknownTenant


@pytest.fixture
def store(tmp_path: Path) -> FileArtifactStore:
    store = FileArtifactStore(tmp_path / "store")
    for data in artifacts(1, 2).values():
        store.put(data)
    return store


def test_routes_by_tenant_and_intent_with_default_intent(store: FileArtifactStore) -> None:
    snapshot = ConfigSnapshot.build(7, deployment(), store)
    assert snapshot.version == 7 and snapshot.tenants == frozenset({"bank-a", "bank-b", "bank-c"})
    decision = snapshot.route("bank-a", "account-takeover")
    assert (decision.tenant, decision.intent, decision.config_version) == ("bank-a", "account-takeover", 7)
    assert decision.live is snapshot.predictors["fraud-v1"]
    assert decision.shadows == (snapshot.predictors["fraud-v2"],)
    assert snapshot.route("bank-a", None) is snapshot.route("bank-a", "card-fraud")  # prebuilt, shared
    assert snapshot.route("bank-b").shadows == ()
    assert snapshot.route("bank-b").live.score_batch(warm_matrix()).mapped.shape == (4,)


def test_unknown_tenant_and_intent_say_what_to_do(store: FileArtifactStore) -> None:
    snapshot = ConfigSnapshot.build(3, deployment({("bank-a", "card-fraud"): ("fraud-v1", ())}), store)
    with pytest.raises(
        UnknownTenant,
        match=r"tenant 'bank-z' \(intent 'card-fraud'\) is not in the live config \(config version 3.*declare tenant/bank-z",
    ):
        snapshot.route("bank-z", "card-fraud")
    with pytest.raises(
        UnknownIntent, match=r"tenant 'bank-a' has no route for intent 'loans'.*its intents: card-fraud.*route/bank-a/loans"
    ):
        snapshot.route("bank-a", "loans")
    assert issubclass(UnknownIntent, RoutingError) and issubclass(UnknownTenant, RoutingError)
    with pytest.raises(UnknownTenant, match="config version 0"):
        ConfigSnapshot.empty().route("bank-a", None)
    assert ConfigSnapshot.empty().version == 0 and ConfigSnapshot.empty().tenants == frozenset()


def test_predictors_sharing_a_model_load_it_once(store: FileArtifactStore) -> None:
    clear_booster_cache()
    clear_predictor_cache()
    shared = (predictor("main", 1), predictor("main-copy", 1, version="2"), predictor("other", 2))
    config = deployment({("bank-a", "card-fraud"): ("main", ("main-copy", "other"))}, predictors=shared)
    first = ConfigSnapshot.build(1, config, store)
    second = ConfigSnapshot.build(2, config, store)
    main, copy, other = (first.predictors[n] for n in ("main", "main-copy", "other"))
    assert main is not copy and main.booster is copy.booster and main.booster is not other.booster
    assert booster_load_counts() == {shared[0].spec.model.sha256: 1, shared[2].spec.model.sha256: 1}
    assert all(second.predictors[n] is first.predictors[n] for n in first.predictors)  # one Predictor per id


def test_route_is_fast(store: FileArtifactStore) -> None:
    snapshot = ConfigSnapshot.build(1, deployment(), store)
    keys = [("bank-a", "card-fraud"), ("bank-b", None), ("bank-c", "account-takeover")] * 10_000
    start = time.perf_counter()
    for tenant, intent in keys:
        snapshot.route(tenant, intent)
    per_call = (time.perf_counter() - start) / len(keys)
    assert per_call < 5e-6, f"route() takes {per_call * 1e6:.2f} us"


def test_a_predictor_no_snapshot_names_is_freed_with_its_model(store: FileArtifactStore) -> None:
    """A long-lived worker swaps many versions; what the live one no longer names must not stay."""
    clear_booster_cache()
    clear_predictor_cache()
    retired, kept = predictor("old", 1), predictor("new", 2)
    first = ConfigSnapshot.build(1, deployment({("bank-a", "card-fraud"): ("old", ("new",))}, predictors=(retired, kept)), store)
    old_predictor, old_booster = weakref.ref(first.predictors["old"]), weakref.ref(first.predictors["old"].booster)
    second = ConfigSnapshot.build(2, deployment({("bank-a", "card-fraud"): ("new", ())}, predictors=(kept,)), store)
    assert second.predictors["new"] is first.predictors["new"]  # still shared while both exist
    del first  # the watcher dropped the old snapshot
    gc.collect()
    assert old_predictor() is None and old_booster() is None
    assert second.route("bank-a").live.score_batch(warm_matrix()).mapped.shape == (4,)
    again = ConfigSnapshot.build(3, deployment({("bank-a", "card-fraud"): ("old", ())}, predictors=(retired,)), store)
    assert again.route("bank-a").live.score_batch(warm_matrix()).mapped.shape == (4,)  # a rollback loads it anew
