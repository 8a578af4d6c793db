"""The ``muse`` command: one sub-command module per area, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from muse_stream.errors import MuseError

# Each module registers its own sub-commands; add a module here to add a command group.
COMMAND_MODULES: tuple[str, ...] = (
    "muse_stream.cli.broker_commands",
    "muse_stream.cli.tenant_commands",
    "muse_stream.cli.worker_commands",
    "muse_stream.cli.demo_commands",
    "muse_stream.cli.schema_commands",
    "muse_stream.cli.predictor_commands",
    "muse_stream.cli.bench_commands",
    "muse_stream.cli.monitor_commands",
    "muse_stream.cli.config_commands",
    "muse_stream.cli.label_commands",
    "muse_stream.cli.replay_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muse",
        description="muse-stream: multi-tenant model serving with seamless model updates, on Apache Kafka.",
        epilog="Commands talk to MUSE_BOOTSTRAP when it is set, else to the local broker (`muse broker start`).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except MuseError as error:
        print(f"muse: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
