"""``muse promote TENANT/INTENT --to PREDICTOR``: a shadow goes live in one command.

The next config is derived from the live one (config/promotion.py): the shadow becomes live, the
old live predictor becomes a shadow. Then the same plan, guard and publication as ``config apply``.

``--guard DURATION`` then watches the promoted routes' alert rates at the reference's edges on the
output topics and, when any drifts beyond ``--tolerance`` of its target (judged once a route has
``--guard-min-events`` results), publishes the previous version again through the rollback path
(config/operations.py); it prints what it saw either way (monitor/guard.py, monitor/output_watch.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option, duration
from muse_stream.defaults import DEFAULT_GUARD_TOLERANCE
from muse_stream.errors import MuseError
from muse_stream.topics import TopicNames

if TYPE_CHECKING:
    from muse_stream.config.deployment import DeploymentConfig
    from muse_stream.config.publisher import ConfigPublisher
    from muse_stream.monitor.guard import RouteJudgement
    from muse_stream.monitor.output_watch import Offsets


def register(subparsers: argparse._SubParsersAction) -> None:
    promote = subparsers.add_parser(
        "promote",
        help="make a shadow predictor live (the old live one becomes a shadow)",
        description="Derive the next config from the live one: on the route(s) named, shadow PREDICTOR becomes live "
        "and the live predictor becomes a shadow. Prints the plan, then publishes it as a new version.",
    )
    add_namespace_option(promote)
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("route", nargs="?", metavar="TENANT/INTENT", help="the route to promote on, e.g. bank-a/card-fraud")
    which.add_argument("--all-tenants", metavar="INTENT", help="promote on every tenant's route of INTENT")
    promote.add_argument("--to", required=True, metavar="PREDICTOR", help="the shadow predictor to make live")
    promote.add_argument(
        "--yes",
        action="store_true",
        help="apply even when the plan removes a tenant, intent or route, or the predictor is expected "
        "to miss its target alert rates on recent shadow traffic (by --tolerance)",
    )
    promote.add_argument(
        "--guard",
        type=duration,
        metavar="DURATION",
        help="watch the promoted routes' alert rates for DURATION (e.g. 10m) and roll back when one drifts",
    )
    promote.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_GUARD_TOLERANCE,
        metavar="RATE",
        help="largest drift of an expected (plan) or observed (--guard) alert rate from its target, "
        "relative (default: %(default)s, i.e. within 20%%)",
    )
    promote.add_argument(
        "--guard-min-events",
        type=int,
        default=None,
        metavar="N",
        help="with --guard: results a route needs before it is judged (default: enough that sampling noise at "
        "the rarest reference edge stays within a third of --tolerance; 4,275 for a 5%% edge and 20%%)",
    )
    promote.set_defaults(handler=_promote)


class GuardRolledBack(MuseError):
    """The guard saw a promoted route drift and published the previous version again."""


def _promote(args: argparse.Namespace) -> int:
    from muse_stream.config.operations import live_config, publish_with_plan
    from muse_stream.config.promotion import promote, routes_of_intent
    from muse_stream.config.publisher import ConfigPublisher
    from muse_stream.monitor.output_watch import output_ends

    publisher = ConfigPublisher(command_bootstrap(), TopicNames(args.namespace))
    live = live_config(publisher)
    if args.all_tenants:
        routes = routes_of_intent(live.config, args.all_tenants)
    else:
        tenant, slash, intent = args.route.partition("/")
        if not slash or not tenant or not intent or "/" in intent:
            raise MuseError(f"route {args.route!r} is not TENANT/INTENT, e.g. bank-a/card-fraud")
        routes = [(tenant, intent)]
    desired = promote(live.config, args.to, routes)
    if args.guard:
        targets = _guard_targets(desired, args.to)
        start = output_ends(publisher.bootstrap, publisher.names, [tenant for tenant, _ in routes])
    result = publish_with_plan(publisher, desired, yes=args.yes, source=f"promoting {args.to}", tolerance=args.tolerance)
    if result.version == result.diff.live_version:
        print(f"no changes: {args.to} is already live there (version {result.version})")
        return 0
    print(f"version {result.version} is live: {args.to} scores {', '.join(f'{t}/{i}' for t, i in routes)}")
    if args.guard:
        _guard(args, publisher, routes, desired.predictor(args.to).id, result.version, live.version, targets, start)
    return 0


def _guard_targets(config: DeploymentConfig, predictor: str) -> dict[str, float]:
    """Threshold -> target alert rate: the reference curve the promoted predictor maps onto."""
    from muse_stream.monitor.aggregates import reference_targets
    from muse_stream.predictors.refit import reference_of
    from muse_stream.transforms import AlertRateCurve

    curve = reference_of(config.predictor(predictor).spec.quantile_map, owner=f"predictor {predictor}")
    assert isinstance(curve, AlertRateCurve)  # reference_of rebuilds curves only
    return reference_targets(curve)


def _guard(
    args: argparse.Namespace,
    publisher: ConfigPublisher,
    routes: list[tuple[str, str]],
    predictor_id: str,
    version: int,
    previous: int,
    targets: dict[str, float],
    start: Offsets,
) -> None:
    from muse_stream.config.operations import rollback_to
    from muse_stream.monitor.guard import events_to_judge
    from muse_stream.monitor.output_watch import watch_routes

    def show(judgements: list[RouteJudgement], title: str) -> None:
        print(title)
        for judgement in judgements:
            print(judgement.render())
        sys.stdout.flush()

    min_events = args.guard_min_events or events_to_judge(targets, args.tolerance)
    print(
        f"guard: watching {len(routes)} route(s) for {args.guard:g} s: roll back to version {previous} when an alert "
        f"rate drifts more than {args.tolerance:.0%} from its target (judged from {min_events} results)"
    )
    sys.stdout.flush()
    judgements = watch_routes(
        publisher.bootstrap,
        start,
        routes,
        predictor_id=predictor_id,
        config_version=version,
        targets=targets,
        duration_s=args.guard,
        tolerance=args.tolerance,
        min_events=min_events,
        on_progress=lambda current: show(current, "guard: so far"),
    )
    failed = [j for j in judgements if j.verdict == "fail"]
    show(judgements, "guard: what it saw")
    if not failed:
        unjudged = [j.route for j in judgements if j.verdict == "pending"]
        if unjudged:
            print(
                f"guard: window over; {', '.join(unjudged)} had fewer than {min_events} results and "
                f"was not judged; version {version} stays live"
            )
        else:
            print(f"guard: passed; version {version} stays live")
        return
    drift = "; ".join(
        f"{j.route} at >={e.threshold}: {e.observed:.4f} against {e.target:.4f} ({e.relative_error:+.0%})"
        for j in failed
        for e in j.drifted(args.tolerance)
    )
    # The step back restores what was live a moment ago: never held up by the plan's guard.
    result = rollback_to(publisher, previous, yes=True, source=f"the guard's rollback to version {previous}")
    raise GuardRolledBack(
        f"guard: {args.to} drifted beyond {args.tolerance:.0%}: {drift}; rolled back: version "
        f"{result.version} is live, with version {previous}'s config. Refit its map "
        f"(`muse predictors fit --from-shadow {args.to}`) before promoting it again"
    )
