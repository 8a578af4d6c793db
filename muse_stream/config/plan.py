"""What a config change does, per tenant and intent, before it is published (pure, no Kafka).

``muse config plan FILE`` prints it; ``apply``, ``rollback`` and ``promote`` print the same plan first
and refuse a destructive one (a tenant, intent or route removed) unless told ``--yes``: an empty or
truncated file would otherwise remove every route without a question, and every later event of
the tenants it dropped would go to the DLQ as ``unknown_tenant``. Terraform's plan and
``kubectl diff`` are the models: ``+`` added, ``~`` changed, ``-`` removed, and a count at the end.

A plan that changes a route's live predictor also carries the alert rates to expect
(config/expected_rates.py); a new live predictor expected to miss its reference targets by more
than the tolerance is refused like a removal, without ``--yes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel

from muse_stream.config.deployment import DeploymentConfig, PredictorConfig, RouteConfig, TenantConfig
from muse_stream.config.expected_rates import RouteExpectation
from muse_stream.defaults import DEFAULT_EXPECTATION_TOLERANCE
from muse_stream.errors import MuseError

Action = Literal["+", "~", "-"]
E = TypeVar("E", bound=BaseModel)


class PlanRefused(MuseError):
    """A destructive plan without ``--yes``: nothing was published."""


@dataclass(frozen=True)
class Change:
    """One entry added, changed or removed; ``detail`` says how, in words."""

    action: Action
    key: str
    label: str
    detail: str = ""

    def render(self, indent: str = "  ") -> str:
        return f"{indent}{self.action} {self.label}" + (f"  {self.detail}" if self.detail else "")


def _route_text(route: RouteConfig) -> str:
    shadows = f", shadows {', '.join(route.shadows)}" if route.shadows else ""
    return f"live {route.live}{shadows}"


def _predictor_text(p: PredictorConfig) -> str:
    return f"{p.spec.name}:{p.version} on model {p.spec.model.name}:{p.spec.model.version}, id {p.id[:12]}"


def _tenant_change(old: TenantConfig, new: TenantConfig) -> str:
    parts = [
        f"{field.replace('_', ' ')} {getattr(old, field)} -> {getattr(new, field)}"
        for field in ("default_intent", "partitions", "retention")
        if getattr(old, field) != getattr(new, field)
    ]
    if old.thresholds != new.thresholds:
        parts.append(f"thresholds [{', '.join(map(str, old.thresholds))}] -> [{', '.join(map(str, new.thresholds))}]")
    return "; ".join(parts)


def _route_change(old: RouteConfig | None, new: RouteConfig | None, changed_predictors: Mapping[str, Change]) -> Change | None:
    route = new or old
    assert route is not None
    if old is None:
        return Change("+", route.key, route.intent, _route_text(route))
    if new is None:
        return Change("-", route.key, route.intent, f"was {_route_text(route)}")
    parts = []
    if old.live != new.live:
        parts.append(f"live {old.live} -> {new.live}")
    added = [s for s in new.shadows if s not in old.shadows]
    removed = [s for s in old.shadows if s not in new.shadows]
    if added or removed:
        parts.append("shadows " + " ".join([*(f"+{s}" for s in added), *(f"-{s}" for s in removed)]))
    if parts:
        return Change("~", route.key, route.intent, "; ".join(parts))
    # The route's record is unchanged, but a predictor it runs is redefined under the same name.
    redefined = [
        f"{role} {name} redefined"
        for role, names in (("live", (new.live,)), ("shadow", new.shadows))
        for name in names
        if name in changed_predictors
    ]
    return Change("~", "", route.intent, "; ".join(redefined) + " (route unchanged)") if redefined else None


def _entry_changes(old: Mapping[str, E], new: Mapping[str, E], label, detail) -> list[Change]:
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        action: Action = "+" if before is None else "-" if after is None else "~"
        changes.append(Change(action, key, label(after or before), detail(before, after)))
    return changes


@dataclass(frozen=True)
class TenantPlan:
    tenant: str
    change: Change | None  # the tenant entry itself
    routes: tuple[Change, ...]

    def render(self) -> list[str]:
        head = f"{self.change.action} tenant {self.tenant}" if self.change else f"  tenant {self.tenant}"
        if self.change and self.change.detail:
            head += f"  {self.change.detail}"
        return [head, *(change.render("    ") for change in self.routes)]


@dataclass(frozen=True)
class Plan:
    tenants: tuple[TenantPlan, ...]
    intents: tuple[Change, ...]
    predictors: tuple[Change, ...]
    models: tuple[Change, ...]
    expectations: tuple[RouteExpectation, ...] = ()
    tolerance: float = DEFAULT_EXPECTATION_TOLERANCE

    @classmethod
    def between(cls, old: DeploymentConfig, new: DeploymentConfig) -> Plan:
        def keyed(items):
            return {item.key: item for item in items}

        predictors = _entry_changes(
            keyed(old.predictors),
            keyed(new.predictors),
            lambda p: p.name,
            lambda a, b: (
                _predictor_text(b) if a is None else "" if b is None else f"{_predictor_text(a)} -> {_predictor_text(b)}"
            ),
        )
        redefined = {c.label: c for c in predictors if c.action == "~"}
        old_tenants, new_tenants = keyed(old.tenants), keyed(new.tenants)
        tenant_changes = {
            c.key: c
            for c in _entry_changes(
                old_tenants,
                new_tenants,
                lambda t: t.name,
                lambda a, b: f"default intent {b.default_intent}" if a is None else "" if b is None else _tenant_change(a, b),
            )
        }
        old_routes, new_routes = keyed(old.routes), keyed(new.routes)
        names = sorted({t.name for t in (*old.tenants, *new.tenants)} | {r.tenant for r in (*old.routes, *new.routes)})
        tenants = []
        for name in names:
            keys = sorted(k for k in old_routes.keys() | new_routes.keys() if k.split("/")[1] == name)
            routes = tuple(c for k in keys if (c := _route_change(old_routes.get(k), new_routes.get(k), redefined)))
            change = tenant_changes.get(f"tenant/{name}")
            if change or routes:
                tenants.append(TenantPlan(name, change, routes))
        intents = _entry_changes(
            keyed(old.intents),
            keyed(new.intents),
            lambda i: i.name,
            lambda a, b: "" if a is None or b is None else "description changed",
        )
        models = _entry_changes(
            keyed(old.models),
            keyed(new.models),
            lambda m: f"{m.name}:{m.version}",
            lambda a, b: (
                f"sha256 {(b or a).sha256[:12]}" + (" (uploaded to the models topic unless already there)" if a is None else "")
            ),
        )
        return cls(tuple(tenants), tuple(intents), tuple(predictors), tuple(models))

    def changes(self) -> list[Change]:
        """Every change of a config key (not the notes on routes whose predictor was redefined)."""
        found = [c for t in self.tenants for c in (t.change, *t.routes) if c is not None and c.key]
        return found + [*self.intents, *self.predictors, *self.models]

    @property
    def empty(self) -> bool:
        return not self.changes()

    @property
    def destructive(self) -> tuple[str, ...]:
        """The keys of the tenants, intents and routes this plan removes, in that order."""
        kinds = ("tenant", "intent", "route")
        removed = [c.key for c in self.changes() if c.action == "-" and c.key.split("/")[0] in kinds]
        return tuple(sorted(removed, key=lambda key: (kinds.index(key.split("/")[0]), key)))

    @property
    def miscalibrated(self) -> tuple[str, ...]:
        """The routes whose new live predictor is expected to miss its reference targets."""
        return tuple(e.route for e in self.expectations if e.off_target(self.tolerance))

    def counts(self) -> dict[Action, int]:
        found = self.changes()
        return {action: sum(c.action == action for c in found) for action in ("+", "~", "-")}

    def render(self) -> list[str]:
        if self.empty:
            return ["no changes"]
        lines: list[str] = []
        for tenant in self.tenants:
            lines += tenant.render()
        for title, changes in (("intents", self.intents), ("predictors", self.predictors), ("models", self.models)):
            if changes:
                lines += [f"  {title}", *(c.render("    ") for c in changes)]
        if self.expectations:
            lines.append("  alert rates")
            for expectation in self.expectations:
                lines += expectation.render(self.tolerance)
        counts = self.counts()
        lines.append(f"Plan: {counts['+']} to add, {counts['~']} to change, {counts['-']} to remove.")
        return lines

    def refusal(self, source: str) -> str:
        """The one-line error for a destructive plan without ``--yes``."""
        harms = []
        if self.destructive:
            harms.append("remove " + ", ".join(key.replace("/", " ", 1) for key in self.destructive))
        for expectation in self.expectations:
            missed = expectation.off_target(self.tolerance)
            if missed:
                figures = ", ".join(f"{rate:.4f} at {edge:g} against {target:.4f}" for edge, rate, target in missed)
                harms.append(
                    f"make {expectation.new} live on {expectation.route}, expected to alert {figures} "
                    f"(off by more than {self.tolerance:.0%})"
                )
        return (
            f"{source} would {'; and '.join(harms)}; nothing was published. Check the plan above and add --yes to apply it anyway"
        )

    def check(self, source: str, *, yes: bool) -> None:
        """Raise :class:`PlanRefused` when the plan removes a tenant, intent or route, or makes live a
        predictor expected to miss its targets, and ``yes`` is not given."""
        if (self.destructive or self.miscalibrated) and not yes:
            raise PlanRefused(self.refusal(source))
