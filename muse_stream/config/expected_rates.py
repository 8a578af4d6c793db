"""The alert rates a change of live predictor would give each route, from recent traffic (pure, no Kafka).

A plan that swaps a route's live predictor shows, at each edge of the reference and at each
threshold the tenant declared, the alert rate of today's live predictor (its results on the output
topic) beside the one to expect from the new predictor, whose scores on the same traffic come from,
in this order: its own results (already live), its shadow scores, or a shadow of the same model and
``b`` whose corrected scores are put through the new map (a map refitted from shadow traffic). A new
live predictor whose expected rate misses a reference target by more than the tolerance is a
destructive change: every tenant threshold on that route would alert at another rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from muse_stream.config.deployment import DeploymentConfig, PredictorConfig
from muse_stream.errors import MuseError
from muse_stream.predictors import PredictorSpec
from muse_stream.predictors.refit import reference_of

# Fewer scores than this say too little about a 5% tail to judge a predictor by.
MIN_EXPECTATION_SCORES = 1000
RouteScores = tuple[str, str, str]  # (tenant, intent, predictor id)


@dataclass(frozen=True)
class RecentScores:
    """Recent scores per (tenant, intent, predictor id): ``live``, what tenants got (output topics);
    ``shadow``, (mapped, corrected) scores of the shadows (shadow topic)."""

    live: Mapping[RouteScores, np.ndarray] = field(default_factory=dict)
    shadow: Mapping[RouteScores, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True)
class Rates:
    """Alert rates at some thresholds on ``n`` scores, and where the scores came from."""

    n: int
    source: str
    at: Mapping[float, float]

    @classmethod
    def of(cls, scores: np.ndarray, thresholds: Iterable[float], source: str) -> Rates:
        return cls(int(scores.size), source, {t: float(np.mean(scores >= t)) for t in thresholds})


@dataclass(frozen=True)
class RouteExpectation:
    route: str
    old: str | None  # name:version of today's live predictor, None for a new route
    new: str
    targets: Mapping[float, float]  # reference edge -> target alert rate (empty: no curve to hold)
    tenant_thresholds: tuple[float, ...]
    now: Rates | None
    after: Rates | None

    @property
    def thresholds(self) -> list[float]:
        return sorted(set(self.targets) | set(self.tenant_thresholds))

    def off_target(self, tolerance: float) -> list[tuple[float, float, float]]:
        """(edge, expected, target) where the new predictor's expected rate misses the target by more
        than ``tolerance`` (relative); nothing when there are too few scores to say."""
        if self.after is None or self.after.n < MIN_EXPECTATION_SCORES:
            return []
        return [
            (edge, self.after.at[edge], target)
            for edge, target in self.targets.items()
            if abs(self.after.at[edge] - target) > tolerance * target
        ]

    def render(self, tolerance: float) -> list[str]:
        def head(rates: Rates | None, name: str | None) -> str:
            return f"{name}: {rates.n} {rates.source}" if rates else f"{name}: no recent scores"

        lines = [
            f"    expected alert rates of {self.route} on recent traffic: now {head(self.now, self.old)}; "
            f"after {head(self.after, self.new)}"
        ]
        lines.append(f"      {'threshold':>10}{'target':>10}{'now':>10}{'after':>10}")
        missed = {edge for edge, _, _ in self.off_target(tolerance)}
        for t in self.thresholds:
            target = f"{self.targets[t]:.4f}" if t in self.targets else "tenant"
            now = f"{self.now.at[t]:.4f}" if self.now else "-"
            after = f"{self.after.at[t]:.4f}" if self.after else "-"
            flag = f"  off target by more than {tolerance:.0%}" if t in missed else ""
            lines.append(f"      {t:>10g}{target:>10}{now:>10}{after:>10}{flag}")
        if self.after is not None and self.after.n < MIN_EXPECTATION_SCORES:
            lines.append(f"      (fewer than {MIN_EXPECTATION_SCORES} scores of {self.new}: not judged)")
        return lines


def _label(p: PredictorConfig) -> str:
    return f"{p.name}:{p.version}"


def _targets(spec: PredictorSpec) -> dict[float, float]:
    try:
        curve = reference_of(spec.quantile_map, owner=spec.name)
    except MuseError:  # an empirical reference: nothing fixed to hold, the rates are shown all the same
        return {}
    return dict(zip(curve.edges, curve.rates, strict=True))


def _scores_of(
    spec: PredictorSpec, tenant: str, intent: str, recent: RecentScores, specs_by_id: Mapping[str, PredictorConfig]
) -> tuple[np.ndarray, str] | None:
    live = recent.live.get((tenant, intent, spec.id))
    if live is not None and live.size:
        return live, "live results"
    shadow = recent.shadow.get((tenant, intent, spec.id))
    if shadow is not None and shadow[0].size:
        return shadow[0], "shadow scores"
    for (t, i, pid), (_, corrected) in recent.shadow.items():
        other = specs_by_id.get(pid)
        if (
            (t, i) == (tenant, intent)
            and other is not None
            and corrected.size
            and (other.spec.model.sha256, other.spec.b) == (spec.model.sha256, spec.b)
        ):
            return spec.build_quantile_map().transform(corrected), f"scores of shadow {_label(other)} through the new map"
    return None


def expectations(old: DeploymentConfig, new: DeploymentConfig, recent: RecentScores) -> tuple[RouteExpectation, ...]:
    """One expectation per route of ``new`` whose live predictor differs (by id) from ``old``'s (a new
    route only when there are recent scores of its predictor)."""
    old_routes = {r.key: r for r in old.routes}
    old_predictors = {p.name: p for p in old.predictors}
    new_predictors = {p.name: p for p in new.predictors}
    specs_by_id = {p.id: p for p in (*old.predictors, *new.predictors)}
    tenants = {t.name: t for t in new.tenants}
    found = []
    for route in sorted(new.routes, key=lambda r: r.key):
        before = old_routes.get(route.key)
        now_p = old_predictors.get(before.live) if before else None
        after_p = new_predictors[route.live]
        if now_p is not None and now_p.id == after_p.id:
            continue
        targets = _targets(after_p.spec)
        tenant = tenants.get(route.tenant)
        thresholds = sorted(set(targets) | set(tenant.thresholds if tenant else ()))
        now_scores = _scores_of(now_p.spec, route.tenant, route.intent, recent, specs_by_id) if now_p else None
        after_scores = _scores_of(after_p.spec, route.tenant, route.intent, recent, specs_by_id)
        if now_p is None and after_scores is None:
            continue  # a new route with nothing to go by (a first apply): no table of dashes
        found.append(
            RouteExpectation(
                f"{route.tenant}/{route.intent}",
                _label(now_p) if now_p else None,
                _label(after_p),
                targets,
                tenant.thresholds if tenant else (),
                Rates.of(now_scores[0], thresholds, now_scores[1]) if now_scores else None,
                Rates.of(after_scores[0], thresholds, after_scores[1]) if after_scores else None,
            )
        )
    return tuple(found)
