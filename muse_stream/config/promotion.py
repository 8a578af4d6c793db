"""Promotion derived from the live config (pure, no Kafka): a shadow becomes live, the old live
predictor becomes a shadow, so the step back is one more promotion and the old model keeps being
scored on the side. ``muse promote`` shows the plan of the result and applies it."""

from __future__ import annotations

from collections.abc import Sequence

from muse_stream.config.deployment import DeploymentConfig, RouteConfig
from muse_stream.errors import MuseError


class PromotionError(MuseError):
    """A promotion the live config does not allow; nothing was published."""


def promoted_route(route: RouteConfig, to: str) -> RouteConfig:
    """``route`` with shadow ``to`` live and its old live predictor first among the shadows."""
    if route.live == to:
        return route
    if to not in route.shadows:
        raise PromotionError(
            f"{to} is not a shadow of {route.key} (live {route.live}, shadows "
            f"[{', '.join(route.shadows)}]): add it as a shadow first, check its scores, then promote"
        )
    return route.model_copy(update={"live": to, "shadows": (route.live, *(s for s in route.shadows if s != to))})


def promote(config: DeploymentConfig, to: str, routes: Sequence[tuple[str, str]]) -> DeploymentConfig:
    """The config with ``to`` promoted on each (tenant, intent) of ``routes``; refuses unknown routes
    and routes where ``to`` is not a shadow (all of them named at once)."""
    if to not in {p.name for p in config.predictors}:
        raise PromotionError(f"predictor {to} is not in the live config; declare it (as a shadow) with `muse config apply` first")
    by_key = {route.key: route for route in config.routes}
    wanted = [f"route/{tenant}/{intent}" for tenant, intent in routes]
    unknown = [key for key in wanted if key not in by_key]
    if unknown:
        raise PromotionError(f"{', '.join(unknown)} not in the live config (routes: {', '.join(sorted(by_key)) or 'none'})")
    problems, promoted = [], {}
    for key in wanted:
        try:
            promoted[key] = promoted_route(by_key[key], to)
        except PromotionError as error:
            problems.append(str(error))
    if problems:
        raise PromotionError("; ".join(problems))
    return DeploymentConfig.from_entries(
        [*(e for e in config.entries() if not isinstance(e, RouteConfig)), *(promoted.get(r.key, r) for r in config.routes)]
    )


def routes_of_intent(config: DeploymentConfig, intent: str) -> list[tuple[str, str]]:
    """Every tenant's route of ``intent`` (``--all-tenants``); refuses an intent no tenant is routed for."""
    found = sorted((r.tenant, r.intent) for r in config.routes if r.intent == intent)
    if not found:
        raise PromotionError(f"no tenant has a route for intent {intent!r} in the live config")
    return found
