"""Intent-based routing: ``(tenant, intent) -> live predictor + shadows``. Pure: no Kafka, no I/O.

Tenants ask for an intent (``card-fraud``), never for a model; the operator's config decides which
predictor answers. A :class:`RouteTable` is built once per config version and answers from a dict
of prebuilt, immutable :class:`RoutingDecision` objects, so the data plane's per-event lookup is
one dict access (``intent=None`` entries, the tenants' default intents, are prebuilt too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from muse_stream.errors import MuseError

if TYPE_CHECKING:
    from muse_stream.predictors import Predictor


class RoutingError(MuseError):
    """An event that no route of the live config can serve."""


class UnknownTenant(RoutingError):
    pass


class UnknownIntent(RoutingError):
    pass


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    tenant: str
    intent: str
    live: Predictor
    shadows: tuple[Predictor, ...]
    config_version: int


@dataclass(frozen=True, slots=True)
class Route:
    """One route, with predictors resolved to objects."""

    tenant: str
    intent: str
    live: Predictor
    shadows: tuple[Predictor, ...] = ()


class RouteTable:
    """Every decision of one config version, prebuilt."""

    __slots__ = ("version", "default_intents", "_decisions", "_intents_of")

    def __init__(self, version: int, default_intents: Mapping[str, str], routes: list[Route]) -> None:
        self.version = version
        self.default_intents = dict(default_intents)
        decisions: dict[tuple[str, str | None], RoutingDecision] = {}
        intents_of: dict[str, list[str]] = {tenant: [] for tenant in self.default_intents}
        for route in routes:
            decision = RoutingDecision(route.tenant, route.intent, route.live, route.shadows, version)
            decisions[(route.tenant, route.intent)] = decision
            intents_of.setdefault(route.tenant, []).append(route.intent)
        for tenant, intent in self.default_intents.items():
            if (tenant, intent) in decisions:
                decisions[(tenant, None)] = decisions[(tenant, intent)]
        self._decisions = decisions
        self._intents_of = {tenant: tuple(sorted(intents)) for tenant, intents in intents_of.items()}

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(self.default_intents)

    def route(self, tenant: str, intent: str | None = None) -> RoutingDecision:
        try:
            return self._decisions[(tenant, intent)]
        except KeyError:
            raise self._miss(tenant, intent) from None

    def _miss(self, tenant: str, intent: str | None) -> RoutingError:
        where = f"config version {self.version}"
        if tenant not in self.default_intents:
            known = ", ".join(sorted(self.default_intents)) or "none"
            return UnknownTenant(
                f"tenant {tenant!r} (intent {intent!r}) is not in the live config ({where}; tenants: {known}); "
                f"an operator must declare tenant/{tenant} with its routes and `muse config apply` it"
            )
        wanted = self.default_intents[tenant] if intent is None else intent
        known = ", ".join(self._intents_of.get(tenant, ())) or "none"
        return UnknownIntent(
            f"tenant {tenant!r} has no route for intent {wanted!r} ({where}; its intents: {known}); "
            f"send one of its intents, or ask an operator to add route/{tenant}/{wanted}"
        )
