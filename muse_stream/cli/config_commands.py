"""``muse config validate|diff|plan|apply|show|history|rollback``: the operator's side of the control plane."""

from __future__ import annotations

import argparse

import orjson

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option, duration
from muse_stream.defaults import DEFAULT_EXPECTATION_TOLERANCE
from muse_stream.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="validate, diff, apply and show the routing/predictor config")
    add_namespace_option(config)
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("validate", _validate, "check a deployment file offline (no broker): every problem, by key"),
        ("diff", _diff, "show what applying a deployment file would change on the broker"),
        ("plan", _plan, "show, per tenant and intent, what applying a deployment file would do"),
        ("apply", _apply, "show the plan, upload its models and publish a deployment file atomically"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("file", help="a deployment TOML file (see topologies/example.toml)")
        action.set_defaults(handler=handler)
        if name in ("plan", "apply"):
            _add_expectation_options(action)
        if name == "apply":
            _add_yes(action)
    rollback = actions.add_parser("rollback", help="publish version N's config again, as a new version")
    rollback.add_argument("version", type=int, metavar="N", help="the version to restore (see `muse config history`)")
    _add_yes(rollback, what="or makes live a predictor expected to miss its target alert rates")
    rollback.set_defaults(handler=_rollback)
    show = actions.add_parser("show", help="print the live config (or --version N's) as JSON, with its version")
    show.add_argument("--version", type=int, metavar="N", help="the config as of version N, rebuilt from the history")
    show.set_defaults(handler=_show)
    actions.add_parser("history", help="one line per version: when, who, what changed").set_defaults(handler=_history)


def _validate(args: argparse.Namespace) -> int:
    from muse_stream.config.files import load_deployment_file

    loaded = load_deployment_file(args.file)
    config = loaded.config
    print(
        f"{args.file}: valid: {len(config.tenants)} tenants, {len(config.intents)} intents, "
        f"{len(config.predictors)} predictors, {len(config.routes)} routes, {len(config.models)} models"
    )
    return 0


def _publisher(args: argparse.Namespace):
    from muse_stream.config.publisher import ConfigPublisher

    return ConfigPublisher(command_bootstrap(), TopicNames(args.namespace))


def _diff(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.config.files import load_deployment_file

    loaded = load_deployment_file(args.file)
    publisher = _publisher(args)
    names = publisher.names
    if names.config_topic not in TopicAdmin(publisher.bootstrap).existing_topics():
        print(f"{names.config_topic} does not exist yet: everything in {args.file} would be added (version 1)")
        for key in sorted(loaded.config.bodies()):
            print(f"+ {key}")
        return 0
    diff = publisher.diff(loaded.config)
    version = publisher.next_version(diff)
    if version is None:
        print(f"no changes: {args.file} is live as version {diff.live_version}")
        return 0
    if diff.empty:
        print(
            f"no changes, but the version marker is missing from {names.config_topic}: "
            f"`muse config apply` restores it as version {version}"
        )
        return 0
    print(f"live version {diff.live_version} -> {version}: {len(diff.changed)} key(s) change")
    for line in diff.describe():
        print(line)
    return 0


def _add_expectation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=duration,
        default=3600.0,
        metavar="DURATION",
        help="a changed live predictor's expected alert rates come from this much recent output and shadow traffic (default: 1h)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_EXPECTATION_TOLERANCE,
        metavar="RATE",
        help="a new live predictor expected to miss a reference target by more than this (relative) "
        "needs --yes (default: %(default)s)",
    )


def _add_yes(
    parser: argparse.ArgumentParser,
    what: str = "or makes live a predictor expected to miss its target alert rates (by --tolerance)",
) -> None:
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"apply even when the plan removes a tenant, intent or route, {what} (refused without it)",
    )


def _plan(args: argparse.Namespace) -> int:
    from muse_stream.config.files import load_deployment_file
    from muse_stream.config.operations import plan_against_live, render_plan

    loaded = load_deployment_file(args.file)
    live, plan = plan_against_live(_publisher(args), loaded.config, since_s=args.since, tolerance=args.tolerance)
    for line in render_plan(live, plan):
        print(line)
    if plan.destructive:
        print(f"`muse config apply` will refuse this plan without --yes: it removes {', '.join(plan.destructive)}")
    if plan.miscalibrated:
        print(
            f"`muse config apply` will refuse this plan without --yes: its new live predictor is expected to miss "
            f"the target alert rates on {', '.join(plan.miscalibrated)}"
        )
    return 0


def _apply(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.config.files import load_deployment_file
    from muse_stream.config.operations import publish_with_plan

    loaded = load_deployment_file(args.file)
    publisher = _publisher(args)
    result = publish_with_plan(
        publisher,
        loaded.config,
        loaded.artifact_bytes(),
        yes=args.yes,
        source=args.file,
        since_s=args.since,
        tolerance=args.tolerance,
    )
    partitions = TopicAdmin(publisher.bootstrap).existing_topics() if result.created_topics else {}
    for topic in result.created_topics:
        print(f"created topic {topic}  partitions={partitions.get(topic, '?')}")
    for change in result.retention_set:
        print(f"retention {change}")
    for sha in result.uploaded:
        print(f"uploaded model {sha}")
    if result.diff.empty and result.version == result.diff.live_version:
        print(f"no changes: version {result.version} is live")
    else:
        print(f"version {result.version} is live")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from muse_stream.config.operations import rollback_to

    result = rollback_to(_publisher(args), args.version, yes=args.yes, source=f"rolling back to version {args.version}")
    if result.version == result.diff.live_version:
        print(f"no changes: version {result.version} is live and already has version {args.version}'s config")
    else:
        print(f"version {result.version} is live, with version {args.version}'s config")
    return 0


def _history_of(args: argparse.Namespace) -> list:
    """Every version's change set on the namespace's history topic (none when it does not exist)."""
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.config.state import read_history

    names = TopicNames(args.namespace)
    bootstrap = command_bootstrap()
    if names.config_history_topic not in TopicAdmin(bootstrap).existing_topics():
        return []
    return read_history(bootstrap, names)


def _history(args: argparse.Namespace) -> int:
    from muse_stream.config.history import HISTORY_HEADER, history_lines

    lines = history_lines(_history_of(args))
    if not lines:
        print(f"no config versions in namespace {args.namespace!r} yet: `muse config apply FILE` publishes version 1")
        return 0
    print(HISTORY_HEADER)
    for line in lines:
        print(line.render())
    return 0


def _show_version(args: argparse.Namespace) -> int:
    from muse_stream.config.history import bodies_at, config_from_bodies, in_order

    entries = in_order(_history_of(args))
    bodies = bodies_at(entries, args.version)
    config_from_bodies(bodies, origin=f"config version {args.version} rebuilt from the history")  # it must be whole
    entry = next(e for e in entries if e.version == args.version)
    document = {
        "config_version": args.version,
        "applied_at": entry.applied_at.isoformat() if entry.applied_at else None,
        "applied_by": entry.applied_by,
        "config": dict(sorted(bodies.items())),
    }
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0


def _show(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.config.state import read_config_log

    if args.version is not None:
        return _show_version(args)
    names = TopicNames(args.namespace)
    bootstrap = command_bootstrap()
    if names.config_topic not in TopicAdmin(bootstrap).existing_topics():
        print(orjson.dumps({"config_version": 0, "config": {}}, option=orjson.OPT_INDENT_2).decode())
        return 0
    state = read_config_log(bootstrap, names)
    document = {
        "config_version": state.version,
        "applied_at": state.marker.applied_at.isoformat() if state.marker else None,
        "config": {key: orjson.loads(body) for key, body in sorted(state.bodies().items())},
        "rejected": [r._asdict() for r in state.rejected],
    }
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    return 0
