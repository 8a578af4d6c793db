"""The ``muse`` command: one sub-command module per area, each exposing ``register(subparsers)``.

A command module imports what its handlers run (XGBoost, numpy, pyarrow, Kafka clients, pydantic
models) inside the handlers, names it for annotations under ``TYPE_CHECKING``, and takes the defaults
its help shows from :mod:`muse_stream.defaults`. So building the parser loads none of those, and
``muse --help``, any command's ``--help`` and a mistyped command answer at once
(tests/unit/test_cli_startup.py holds it to that).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from muse_stream.cli.options import (
    add_top_level_options,
    apply_global_options,
    spread_global_options,
)
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
    "muse_stream.cli.backtest_commands",
    "muse_stream.cli.promote_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muse",
        description="muse-stream: multi-tenant model serving with seamless model updates, on Apache Kafka.",
        epilog="Commands talk to MUSE_BOOTSTRAP when it is set, else to the local broker (`muse broker start`). "
        "The options above are accepted after any command and action too.",
    )
    add_top_level_options(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    spread_global_options(parser)
    return parser


def _kafka_exceptions() -> tuple[type[Exception], ...]:
    """confluent_kafka's KafkaException once a command has loaded the client, else nothing: a
    command that never loaded it cannot have raised it, and ``muse --help`` need not load it."""
    kafka = sys.modules.get("confluent_kafka")
    return (kafka.KafkaException,) if kafka is not None else ()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_global_options(args)
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away is reported here, not at exit
        return code
    except MuseError as error:
        print(f"muse: error: {error}", file=sys.stderr)
        return 2
    except _kafka_exceptions() as error:
        # Kafka refused something after the cluster answered (say, an authorization error): one
        # line with Kafka's own words, the details at --log-level debug.
        print(
            f"muse: error: the Kafka cluster refused the request: {error.args[0].str()}; "
            "rerun with --log-level debug for the client's log",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        # `muse config show | head`: the reader has what it wants; stop quietly, as `git log | head` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
