"""``muse labels load FILE.parquet --tenant T``: publish event outcomes to a tenant's labels topic."""

from __future__ import annotations

import argparse

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option
from muse_stream.topics import TopicNames


def register(subparsers: argparse._SubParsersAction) -> None:
    labels = subparsers.add_parser("labels", help="publish event outcomes (labels) for replays and backtests")
    add_namespace_option(labels)
    actions = labels.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load", help="publish a Parquet file of {event_id, label (0/1), labelled_at} to a tenant's labels topic"
    )
    load.add_argument("file", help="a Parquet file with columns event_id, label, labelled_at")
    load.add_argument("--tenant", required=True, help="the tenant whose events the labels are for")
    load.set_defaults(handler=_load)


def _load(args: argparse.Namespace) -> int:
    from muse_stream.clients.admin import TopicAdmin
    from muse_stream.clients.producing import produce_records
    from muse_stream.labels import encode_label, read_label_file
    from muse_stream.replay.sources import resolve_tenants

    names = TopicNames(args.namespace)
    topic = names.labels_topic(args.tenant)  # checks the tenant's name first
    records = read_label_file(args.file)  # the whole file is checked before anything is published
    bootstrap = command_bootstrap()
    admin = TopicAdmin(bootstrap)
    resolve_tenants(admin, names, [args.tenant])  # an unknown tenant is refused by name
    existing = admin.existing_topics()
    if topic not in existing:  # a tenant created before labels existed: give it its labels topic now
        admin.ensure(names.tenant_topic_specs(args.tenant, existing[names.input_topic(args.tenant)], kinds=("labels",)))
        print(f"created {topic}")
    count = produce_records(bootstrap, ((topic, *encode_label(record)) for record in records), what=f"labels to {topic}")
    fraud = sum(record.label for record in records)
    print(f"published {count} labels ({fraud} fraud, {count - fraud} genuine) from {args.file} to {topic}")
    return 0
