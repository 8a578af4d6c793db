"""``muse tenants add|alter|list|credentials|remove|acls``: per-tenant topics and, on a secured cluster, access.

In secure mode (the client config logs in with SASL: the admin's) ``add`` also creates the tenant's
SCRAM credential, its ACLs and its client file; the security parts live in :mod:`muse_stream.cli.tenant_security`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from muse_stream.broker import command_bootstrap
from muse_stream.cli import tenant_security
from muse_stream.cli.options import add_namespace_option
from muse_stream.errors import MuseError
from muse_stream.topics import (
    DEFAULT_RETENTION_MS,
    TENANT_TOPIC_KINDS,
    TopicNames,
    describe_retention,
    parse_retention,
)

if TYPE_CHECKING:
    from muse_stream.clients.admin import TopicAdmin

RETENTION_HELP = (
    "how long the tenant's input and labels topics keep records, e.g. 14d, 36h or forever: how far back `muse replay` can go"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    tenants = subparsers.add_parser("tenants", help="create and list tenants' topics")
    add_namespace_option(tenants)
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a tenant's input, output, DLQ and labels topics (idempotent)")
    add.add_argument("name", help="tenant name: 1-48 lowercase letters, digits, - and _ (no dot), e.g. bank-a")
    add.add_argument("--partitions", type=int, default=1, help="input/output partitions (default: %(default)s)")
    tenant_security.add_options(add)
    add.set_defaults(handler=_add)
    add.add_argument("--retention", help=RETENTION_HELP + " (default: 7d)")
    alter = actions.add_parser(
        "alter", help="give a tenant's topics more partitions (they only grow), or another retention for its input and labels"
    )
    alter.add_argument("name", help="the tenant whose topics to alter")
    alter.add_argument(
        "--partitions",
        type=int,
        help="new input/output partition count; Kafka only adds partitions, never removes them",
    )
    alter.add_argument("--retention", help=RETENTION_HELP)
    alter.set_defaults(handler=_alter)
    actions.add_parser("list", help="list tenants found on the broker").set_defaults(handler=_list)
    tenant_security.register(actions)


def _add(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin, ensure_tenant_topics

    names = TopicNames(args.namespace)
    admin = TopicAdmin(command_bootstrap())
    retention_ms = DEFAULT_RETENTION_MS if args.retention is None else parse_retention(args.retention)
    ensured = ensure_tenant_topics(admin, names, [args.name], args.partitions, retention_ms=retention_ms)
    partitions = admin.existing_topics()
    for spec, created in ensured:
        print(f"{'created' if created else 'exists '}  {spec.name}  partitions={partitions[spec.name]}")
    tenant_security.after_add(args, admin.bootstrap, names)
    return 0


def _alter(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin, set_tenant_retention

    if args.partitions is None and args.retention is None:
        raise MuseError("tenants alter: say what to change, --partitions N and/or --retention DURATION (e.g. 14d)")
    names = TopicNames(args.namespace)
    admin = TopicAdmin(command_bootstrap())
    if args.retention is not None:
        retention_ms = parse_retention(args.retention)
        for topic, before in set_tenant_retention(admin, names, args.name, retention_ms).items():
            now = describe_retention(str(retention_ms))
            change = "unchanged" if before == now else f"was {before}"
            print(f"{change:<14} {topic}  retention={now}")
    if args.partitions is not None:
        _grow(admin, names, args)
    return 0


def _grow(admin: TopicAdmin, names: TopicNames, args: argparse.Namespace) -> None:
    specs = names.tenant_topic_specs(args.name, args.partitions, kinds=TENANT_TOPIC_KINDS)  # checks name and count
    # The kinds that scale with the tenant (input, output, labels; the DLQ keeps one partition), of
    # those that exist: a tenant made before labels existed has no labels topic to grow.
    existing = admin.existing_topics()
    topics = [
        spec.name
        for spec in specs
        if spec.partitions == args.partitions and (spec.name in existing or spec.name == names.input_topic(args.name))
    ]
    before = admin.grow({topic: args.partitions for topic in topics})
    for topic in topics:
        change = "unchanged" if before[topic] == args.partitions else f"grew from {before[topic]}"
        print(f"{change:<14} {topic}  partitions={args.partitions}")
    if any(before[topic] != args.partitions for topic in topics):
        print(
            "note: keyed events now hash onto more partitions, so one key's later events may go to another partition "
            "than its earlier ones"
        )


def _list(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin, tenant_retention, tenants_on_broker

    names = TopicNames(args.namespace)
    admin = TopicAdmin(command_bootstrap())
    tenants = tenants_on_broker(admin, names)
    if not tenants:
        print(f"no tenants in namespace {names.namespace!r}; add one with `muse tenants add NAME`")
    retention = tenant_retention(admin, names, tenants)  # of the input topic: how far back a replay can go
    quotas = tenant_security.quotas_by_tenant(command_bootstrap(), names, tenants) if tenants else {}
    replication = admin.replication_factors() if tenants else {}
    for tenant, partitions in tenants.items():
        quota = f"\tquota={quotas[tenant]}" if tenant in quotas else ""
        print(
            f"{tenant}\tpartitions={partitions}\tretention={retention[tenant]}"
            f"\treplication={replication.get(names.input_topic(tenant), 0)}\tprefix={names.tenant_prefix(tenant)}{quota}"
        )
    return 0
