"""An immutable, fully loaded config version: what the data plane routes by.

A snapshot is built completely (config checked, every predictor's model loaded and the predictor
warmed by scoring a small batch) before anyone can see it; the watcher then swaps one reference. So
an event is routed either by version N or by version N+1, never by a mixture, and the first event
after a promotion pays no model-loading cost.

Sharing: boosters are cached per sha256 by :func:`muse_stream.models.load_booster`; predictors are
cached here per predictor id (content hash), so every snapshot, route and watcher of a process
that names the same spec uses one :class:`Predictor` object. Both caches hold their entries weakly:
a predictor no snapshot names any more (a retired model, a dropped shadow) is freed with its booster
once the last snapshot that used it is gone, so a long-lived worker does not grow with every version.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from muse_stream.config.deployment import DeploymentConfig
from muse_stream.models import ArtifactStore
from muse_stream.predictors import Predictor, PredictorSpec
from muse_stream.routing import Route, RouteTable, RoutingDecision

WARM_ROWS = 8

_PREDICTORS: weakref.WeakValueDictionary[str, Predictor] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def shared_predictor(spec: PredictorSpec, store: ArtifactStore) -> Predictor:
    """The process's one predictor for ``spec`` (by id), loaded and warmed on first use."""
    with _LOCK:
        predictor = _PREDICTORS.get(spec.id)
    if predictor is not None:
        return predictor
    predictor = Predictor.from_spec(spec, store)
    predictor.score_batch(np.zeros((WARM_ROWS, len(predictor.feature_names)), dtype=np.float32))
    with _LOCK:
        return _PREDICTORS.setdefault(spec.id, predictor)


def clear_predictor_cache() -> None:
    """Forget shared predictors (tests only)."""
    with _LOCK:
        _PREDICTORS.clear()


class ConfigSnapshot:
    """One config version with its predictors resolved; immutable once built."""

    __slots__ = ("version", "config", "predictors", "_table")

    def __init__(self, version: int, config: DeploymentConfig, predictors: Mapping[str, Predictor]) -> None:
        self.version = version
        self.config = config
        self.predictors: Mapping[str, Predictor] = MappingProxyType(dict(predictors))
        routes = [
            Route(r.tenant, r.intent, self.predictors[r.live], tuple(self.predictors[s] for s in r.shadows))
            for r in config.routes
        ]
        self._table = RouteTable(version, {t.name: t.default_intent for t in config.tenants}, routes)

    @classmethod
    def empty(cls) -> ConfigSnapshot:
        """Version 0: no tenants; every route() raises UnknownTenant."""
        return cls(0, DeploymentConfig(), {})

    @classmethod
    def build(cls, version: int, config: DeploymentConfig, store: ArtifactStore) -> ConfigSnapshot:
        """Load (or reuse) and warm every predictor of ``config``; raises if any cannot be loaded."""
        return cls(version, config, {p.name: shared_predictor(p.spec, store) for p in config.predictors})

    @property
    def tenants(self) -> frozenset[str]:
        return self._table.tenants

    def route(self, tenant: str, intent: str | None = None) -> RoutingDecision:
        """The decision for an event; ``intent=None`` means the tenant's default intent."""
        return self._table.route(tenant, intent)

    def __repr__(self) -> str:
        return f"ConfigSnapshot(version={self.version}, tenants={sorted(self.tenants)}, predictors={sorted(self.predictors)})"
