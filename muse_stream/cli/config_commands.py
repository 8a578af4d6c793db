"""``muse config validate|diff|apply|show``: the operator's side of the control plane."""

from __future__ import annotations

import argparse

import orjson

from muse_stream.broker import command_bootstrap
from muse_stream.clients.admin import TopicAdmin
from muse_stream.topics import DEFAULT_NAMESPACE, TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="validate, diff, apply and show the routing/predictor config")
    config.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="topic namespace (default: %(default)s)")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("validate", _validate, "check a deployment file offline (no broker): every problem, by key"),
        ("diff", _diff, "show what applying a deployment file would change on the broker"),
        ("apply", _apply, "upload its models and publish a deployment file atomically; prints the new version"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("file", help="a deployment TOML file (see topologies/example.toml)")
        action.set_defaults(handler=handler)
    actions.add_parser("show", help="print the live config as JSON, with its version").set_defaults(handler=_show)


def _validate(args: argparse.Namespace) -> int:
    from muse_stream.config.files import load_deployment_file

    loaded = load_deployment_file(args.file)
    config = loaded.config
    print(f"{args.file}: valid: {len(config.tenants)} tenants, {len(config.intents)} intents, "
          f"{len(config.predictors)} predictors, {len(config.routes)} routes, {len(config.models)} models")
    return 0


def _publisher(args: argparse.Namespace):
    from muse_stream.config.publisher import ConfigPublisher

    return ConfigPublisher(command_bootstrap(), TopicNames(args.namespace))


def _diff(args: argparse.Namespace) -> int:
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
        print(f"no changes, but the version marker is missing from {names.config_topic}: "
              f"`muse config apply` restores it as version {version}")
        return 0
    print(f"live version {diff.live_version} -> {version}: {len(diff.changed)} key(s) change")
    for line in diff.describe():
        print(line)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from muse_stream.config.files import load_deployment_file

    loaded = load_deployment_file(args.file)
    publisher = _publisher(args)
    result = publisher.publish(loaded.config, loaded.artifact_bytes())
    partitions = TopicAdmin(publisher.bootstrap).existing_topics() if result.created_topics else {}
    for topic in result.created_topics:
        print(f"created topic {topic}  partitions={partitions.get(topic, '?')}")
    for sha in result.uploaded:
        print(f"uploaded model {sha}")
    if result.diff.empty:
        print(f"no changes: version {result.version} is live")
    else:
        for line in result.diff.describe():
            print(line)
        print(f"version {result.version} is live")
    return 0


def _show(args: argparse.Namespace) -> int:
    from muse_stream.config.state import read_config_log

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
