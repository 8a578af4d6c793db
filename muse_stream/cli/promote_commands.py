"""``muse promote TENANT/INTENT --to PREDICTOR``: a shadow goes live in one command.

The next config is derived from the live one (config/promotion.py): the shadow becomes live, the
old live predictor becomes a shadow. Then the same plan, guard and publication as ``config apply``.
"""

from __future__ import annotations

import argparse

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option
from muse_stream.errors import MuseError
from muse_stream.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:
    promote = subparsers.add_parser(
        "promote", help="make a shadow predictor live (the old live one becomes a shadow)",
        description="Derive the next config from the live one: on the route(s) named, shadow PREDICTOR becomes live "
                    "and the live predictor becomes a shadow. Prints the plan, then publishes it as a new version.")
    add_namespace_option(promote)
    which = promote.add_mutually_exclusive_group(required=True)
    which.add_argument("route", nargs="?", metavar="TENANT/INTENT", help="the route to promote on, e.g. bank-a/card-fraud")
    which.add_argument("--all-tenants", metavar="INTENT", help="promote on every tenant's route of INTENT")
    promote.add_argument("--to", required=True, metavar="PREDICTOR", help="the shadow predictor to make live")
    promote.add_argument("--yes", action="store_true", help="apply even when the plan removes a tenant, intent or route")
    promote.set_defaults(handler=_promote)


def _promote(args: argparse.Namespace) -> int:
    from muse_stream.config.operations import live_config, publish_with_plan
    from muse_stream.config.promotion import promote, routes_of_intent
    from muse_stream.config.publisher import ConfigPublisher

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
    result = publish_with_plan(publisher, desired, yes=args.yes, source=f"promoting {args.to}")
    if result.version == result.diff.live_version:
        print(f"no changes: {args.to} is already live there (version {result.version})")
    else:
        print(f"version {result.version} is live: {args.to} scores {', '.join(f'{t}/{i}' for t, i in routes)}")
    return 0
