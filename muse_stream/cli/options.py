"""The ``muse`` command's global options, accepted wherever a user puts them.

``--log-level``, ``--connect-timeout`` and ``--client-config`` apply to every command;
``--namespace`` to the command groups that call :func:`add_namespace_option`. Each is defined once
here. The top-level parser holds the real defaults; every sub-parser gets a copy whose default is
``argparse.SUPPRESS``, because a sub-parser's defaults would overwrite what was given before it
(``muse --namespace x tenants list``), while a value given after it still lands.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator

from muse_stream.clients.settings import (
    CLIENT_CONFIG_ENV,
    CONNECT_TIMEOUT_ENV,
    DEFAULT_CONNECT_TIMEOUT_S,
    MIN_CONNECT_TIMEOUT_S,
)
from muse_stream.durations import duration_ms
from muse_stream.topics import DEFAULT_NAMESPACE

NAMESPACE_ENV = "MUSE_NAMESPACE"
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "warning"
GLOBAL_GROUP_TITLE = "global options (also accepted before the command)"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not MIN_CONNECT_TIMEOUT_S <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= {MIN_CONNECT_TIMEOUT_S:g}")
    return seconds


def positive_int(text: str) -> int:
    """A whole number of 1 or more (an argparse type)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number of 0 or more (an argparse type)."""
    return _whole_number(text, 0)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give {least} or more")
    return value


def positive_ints(text: str) -> list[int]:
    """Comma-separated whole numbers of 1 or more, e.g. --tenants 1,10,500 (an argparse type)."""
    return [positive_int(part) for part in text.split(",")]


def duration(text: str) -> float:
    """An argparse type: ``20s``, ``10m``, ``2h``, ``1d`` or plain seconds, as seconds (> 0)."""
    ms = duration_ms(text)
    if ms is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write e.g. 20s, 10m, 2h or 1d")
    return ms / 1000


def _global_group(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Sub-parsers list the global options apart from their own."""
    for group in parser._action_groups:
        if group.title == GLOBAL_GROUP_TITLE:
            return group
    return parser.add_argument_group(GLOBAL_GROUP_TITLE)


def _add_namespace(parser: argparse.ArgumentParser, default: object) -> None:
    target = parser if default is not argparse.SUPPRESS else _global_group(parser)
    target.add_argument(
        "--namespace",
        default=default,
        metavar="NS",
        help=f"topic namespace (default: ${NAMESPACE_ENV}, else {DEFAULT_NAMESPACE})",
    )


def _add_global(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    group = parser if top_level else _global_group(parser)
    group.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=default(None),
        help=f"how much to log, librdkafka's own lines included at debug (default: {DEFAULT_LOG_LEVEL}; the worker's: info)",
    )
    group.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=default(None),
        metavar="SECONDS",
        help="how long to wait for the cluster to answer before saying it cannot be reached "
        f"(default: ${CONNECT_TIMEOUT_ENV}, else {DEFAULT_CONNECT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--client-config",
        default=default(None),
        metavar="FILE",
        help="librdkafka properties file with the cluster's security settings "
        f"(security.protocol, ssl.*, sasl.*) for every client (default: ${CLIENT_CONFIG_ENV})",
    )


def add_namespace_option(parser: argparse.ArgumentParser) -> None:
    """For a command group that works in a topic namespace: accepted after it and after its actions."""
    _add_namespace(parser, argparse.SUPPRESS)


def add_top_level_options(parser: argparse.ArgumentParser) -> None:
    _add_namespace(parser, os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE)
    _add_global(parser, top_level=True)


def sub_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The direct sub-parsers of ``parser`` (each once, aliases or not)."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield child


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser below it."""
    yield parser
    for child in sub_parsers(parser):
        yield from all_parsers(child)


def _takes(parser: argparse.ArgumentParser, option: str) -> bool:
    return option in parser._option_string_actions


def spread_global_options(parser: argparse.ArgumentParser, *, namespace: bool = False) -> None:
    """Give every parser below ``parser`` the global options, and ``--namespace`` to the ones
    below a group that takes it."""
    for child in sub_parsers(parser):
        _add_global(child, top_level=False)
        if namespace and not _takes(child, "--namespace"):
            add_namespace_option(child)
        spread_global_options(child, namespace=_takes(child, "--namespace"))


def apply_global_options(args: argparse.Namespace) -> None:
    """Logging for this process; the client settings go into the environment, where
    :mod:`muse_stream.clients.settings` reads them, so child processes (bench workers) agree."""
    level = args.log_level or getattr(args, "default_log_level", DEFAULT_LOG_LEVEL)
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    if args.connect_timeout is not None:
        os.environ[CONNECT_TIMEOUT_ENV] = repr(args.connect_timeout)
    if args.client_config is not None:
        os.environ[CLIENT_CONFIG_ENV] = args.client_config
