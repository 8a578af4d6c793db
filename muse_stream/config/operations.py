"""Plan, guard, publish: the one path by which ``config apply``, ``config rollback`` and ``promote``
(and its ``--guard``'s automatic rollback) change the live config, so all show the same plan and
refuse the same destructive changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.recent_scores import read_recent_scores
from muse_stream.config.deployment import KINDS, DeploymentConfig
from muse_stream.config.expected_rates import RecentScores, expectations
from muse_stream.config.history import config_at
from muse_stream.config.plan import Plan
from muse_stream.config.publisher import ConfigPublisher, PublishResult
from muse_stream.config.state import read_history
from muse_stream.defaults import DEFAULT_EXPECTATION_TOLERANCE


@dataclass(frozen=True)
class LiveConfig:
    version: int
    config: DeploymentConfig


def live_config(publisher: ConfigPublisher) -> LiveConfig:
    """What is live now: version 0 and an empty config when the namespace has no config topic yet."""
    if publisher.names.config_topic not in TopicAdmin(publisher.bootstrap).existing_topics():
        return LiveConfig(0, DeploymentConfig())
    state = publisher.live()
    try:
        return LiveConfig(state.version, state.deployment())
    except ValidationError:
        # Records written around the CLI left it inconsistent: still plan against what is there.
        groups: dict[str, list] = {kind: [] for kind in KINDS}
        for key, entry in sorted(state.entries.items()):
            groups[key.partition("/")[0]].append(entry)
        fields: dict[str, Any] = {f"{k}s": tuple(v) for k, v in groups.items()}
        return LiveConfig(state.version, DeploymentConfig.model_construct(**fields))


# How far back a plan looks for the scores its expected alert rates come from.
DEFAULT_EXPECTATION_WINDOW_S = 3600.0


def plan_against_live(
    publisher: ConfigPublisher,
    desired: DeploymentConfig,
    *,
    since_s: float = DEFAULT_EXPECTATION_WINDOW_S,
    tolerance: float = DEFAULT_EXPECTATION_TOLERANCE,
) -> tuple[LiveConfig, Plan]:
    """The plan from the live config to ``desired``, with the alert rates to expect on every route
    whose live predictor changes, from the last ``since_s`` seconds of output and shadow traffic."""
    live = live_config(publisher)
    plan = Plan.between(live.config, desired)
    found = expectations(live.config, desired, RecentScores())
    if found:
        tenants = sorted({e.route.split("/")[0] for e in found})
        recent = read_recent_scores(publisher.bootstrap, publisher.names, tenants, since_s=since_s)
        plan = replace(plan, expectations=expectations(live.config, desired, recent), tolerance=tolerance)
    return live, plan


def render_plan(live: LiveConfig, plan: Plan) -> list[str]:
    return [f"plan against live version {live.version}:", *plan.render()]


def publish_with_plan(
    publisher: ConfigPublisher,
    desired: DeploymentConfig,
    artifacts: Mapping[str, bytes] | None = None,
    *,
    yes: bool,
    source: str,
    echo: Callable[[str], None] = print,
    since_s: float = DEFAULT_EXPECTATION_WINDOW_S,
    tolerance: float = DEFAULT_EXPECTATION_TOLERANCE,
) -> PublishResult:
    """Show the plan, refuse a destructive one without ``yes``, then publish exactly what was planned
    (the publication is refused if another version went live in between)."""
    live, plan = plan_against_live(publisher, desired, since_s=since_s, tolerance=tolerance)
    for line in render_plan(live, plan):
        echo(line)
    plan.check(source, yes=yes)
    return publisher.publish(desired, artifacts, expect_version=live.version)


def rollback_to(
    publisher: ConfigPublisher, version: int, *, yes: bool, source: str, echo: Callable[[str], None] = print
) -> PublishResult:
    """Version ``version``'s config, rebuilt from the history topic, published again as a new version."""
    history = []
    if publisher.names.config_history_topic in TopicAdmin(publisher.bootstrap).existing_topics():
        history = read_history(publisher.bootstrap, publisher.names)
    return publish_with_plan(publisher, config_at(history, version), yes=yes, source=source, echo=echo)
