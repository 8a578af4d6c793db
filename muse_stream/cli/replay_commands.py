"""``muse replay``: score the input topics again with the live config, an earlier version or a
candidate file, and write the scores and labels as a Parquet dataset (see muse_stream.replay)."""

from __future__ import annotations

import argparse
from pathlib import Path

from muse_stream.broker import command_bootstrap
from muse_stream.cli.options import add_namespace_option
from muse_stream.replay import DEFAULT_BATCH_SIZE
from muse_stream.topics import TopicNames


def _config(text: str):
    from muse_stream.replay.configs import ConfigChoice

    return ConfigChoice("live") if text == "live" else ConfigChoice("file", path=Path(text))


def _version(text: str):
    from muse_stream.replay.configs import ConfigChoice

    try:
        version = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"config version must be a whole number, got {text!r}") from None
    if version < 1:
        raise argparse.ArgumentTypeError(f"config versions start at 1, got {version}")
    return ConfigChoice("version", version=version)


def _offset(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an offset is a whole number, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="score input topics again with one or more configs; write scores and labels as Parquet",
        description="Reads the tenants' input topics (read_committed, partitions assigned by the replay itself: the "
        "workers' group is never joined nor committed), scores every event with each config through the "
        "workers' BatchScorer, joins the labels and writes a Parquet dataset partitioned by tenant and day.",
    )
    add_namespace_option(replay)
    who = replay.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", action="append", dest="tenants", metavar="T", help="a tenant to replay (repeatable)")
    who.add_argument("--all-tenants", action="store_true", help="every tenant of the namespace")
    replay.add_argument(
        "--config",
        type=_config,
        action="append",
        dest="configs",
        metavar="live|FILE.toml",
        help="`live`, or a candidate deployment file (never published); repeatable",
    )
    replay.add_argument(
        "--config-version",
        type=_version,
        action="append",
        dest="configs",
        metavar="N",
        help="config version N, rebuilt from the config-history topic; repeatable",
    )
    replay.add_argument(
        "--from", dest="from_time", metavar="TIME", help="ISO 8601 start of the window (inclusive; UTC if no zone)"
    )
    replay.add_argument("--to", dest="to_time", metavar="TIME", help="ISO 8601 end of the window (exclusive)")
    replay.add_argument("--from-offset", type=_offset, metavar="N", help="first offset of every input partition")
    replay.add_argument("--to-offset", type=_offset, metavar="N", help="offset to stop at (exclusive) in every input partition")
    replay.add_argument(
        "--shard",
        metavar="K/N",
        help="replay only shard K of N (every Nth input partition); "
        "N replays with the same arguments, e.g. on N machines, cover every event once and may share --out",
    )
    replay.add_argument("--out", required=True, type=Path, help="directory for the dataset (new or empty)")
    replay.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="records scored per batch (default: %(default)s)"
    )
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from muse_stream.replay.run import replay
    from muse_stream.replay.window import Window, parse_shard, parse_time

    window = Window(
        from_ms=None if args.from_time is None else parse_time(args.from_time, "--from"),
        to_ms=None if args.to_time is None else parse_time(args.to_time, "--to"),
        from_offset=args.from_offset,
        to_offset=args.to_offset,
    )
    summary = replay(
        command_bootstrap(),
        TopicNames(args.namespace),
        None if args.all_tenants else args.tenants,
        args.configs or [],
        window,
        args.out,
        batch_size=args.batch_size,
        shard=None if args.shard is None else parse_shard(args.shard),
    )
    for line in summary.lines():
        print(line)
    return 0
