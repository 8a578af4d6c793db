"""``muse tenants add|list``: per-tenant input, output, DLQ and labels topics."""

from __future__ import annotations

import argparse

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option
from muse_stream.clients.admin import (
    TopicAdmin,
    ensure_tenant_topics,
    tenant_retention,
    tenants_on_broker,
)
from muse_stream.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:
    tenants = subparsers.add_parser("tenants", help="create and list tenants' topics")
    add_namespace_option(tenants)
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a tenant's input, output, DLQ and labels topics (idempotent)")
    add.add_argument("name", help="tenant name: 1-48 lowercase letters, digits, - and _ (no dot), e.g. bank-a")
    add.add_argument("--partitions", type=int, default=1, help="input/output partitions (default: %(default)s)")
    add.set_defaults(handler=_add)
    actions.add_parser("list", help="list tenants found on the broker").set_defaults(handler=_list)


def _add(args: argparse.Namespace) -> int:
    names = TopicNames(args.namespace)
    admin = TopicAdmin(command_bootstrap())
    ensured = ensure_tenant_topics(admin, names, [args.name], args.partitions)
    partitions = admin.existing_topics()
    for spec, created in ensured:
        print(f"{'created' if created else 'exists '}  {spec.name}  partitions={partitions[spec.name]}")
    return 0


def _list(args: argparse.Namespace) -> int:
    names = TopicNames(args.namespace)
    admin = TopicAdmin(command_bootstrap())
    tenants = tenants_on_broker(admin, names)
    if not tenants:
        print(f"no tenants in namespace {names.namespace!r}; add one with `muse tenants add NAME`")
    retention = tenant_retention(admin, names, tenants)  # of the input topic: how far back a replay can go
    for tenant, partitions in tenants.items():
        print(f"{tenant}\tpartitions={partitions}\tretention={retention[tenant]}\tprefix={names.tenant_prefix(tenant)}")
    return 0
