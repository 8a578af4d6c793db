"""The `muse` command's parser: every option explained, global options accepted wherever a user
puts them, and the namespace from MUSE_NAMESPACE."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from muse_stream.cli import build_parser
from muse_stream.cli.options import all_parsers


def _unexplained(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            missing += [f"{parser.prog} {choice.dest}" for choice in action._choices_actions if not choice.help]
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_command_and_option_has_help_text() -> None:
    parsers = list(all_parsers(build_parser()))
    assert len(parsers) > 20  # the walk reaches the actions of every command group
    missing = [name for parser in parsers for name in _unexplained(parser)]
    assert missing == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--namespace", "foo", "tenants", "list"],
        ["tenants", "--namespace", "foo", "list"],
        ["tenants", "list", "--namespace", "foo"],
        ["config", "show", "--namespace", "foo"],
        ["--namespace", "foo", "config", "apply", "x.toml"],
        ["config", "diff", "x.toml", "--namespace", "foo"],
        ["worker", "--worker-id", "w1", "--namespace", "foo"],
        ["--namespace", "foo", "worker", "--worker-id", "w1"],
        ["monitor", "--namespace", "foo"],
    ],
)
def test_namespace_is_accepted_before_and_after_command_and_action(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).namespace == "foo"


def test_namespace_defaults_to_muse_namespace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSE_NAMESPACE", raising=False)
    assert build_parser().parse_args(["tenants", "list"]).namespace == "muse"
    monkeypatch.setenv("MUSE_NAMESPACE", "staging")
    assert build_parser().parse_args(["tenants", "list"]).namespace == "staging"
    assert build_parser().parse_args(["tenants", "list", "--namespace", "foo"]).namespace == "foo"


def test_commands_without_topics_take_no_namespace_after_them() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["broker", "status", "--namespace", "foo"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "--connect-timeout", "12", "--client-config", "c.properties", "tenants", "list"],
        ["tenants", "--log-level", "debug", "--connect-timeout", "12", "--client-config", "c.properties", "list"],
        ["tenants", "list", "--log-level", "DEBUG", "--connect-timeout", "12", "--client-config", "c.properties"],
        ["broker", "logs", "-n", "5", "--log-level", "debug", "--connect-timeout", "12", "--client-config", "c.properties"],
    ],
)
def test_global_options_are_accepted_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.log_level, args.connect_timeout, args.client_config) == ("debug", 12.0, "c.properties")


def test_global_options_keep_their_defaults_when_not_given() -> None:
    args = build_parser().parse_args(["worker", "--worker-id", "w1"])
    assert (args.log_level, args.connect_timeout, args.client_config) == (None, None, None)
    assert args.default_log_level == "info"  # the worker logs its progress unless told otherwise


def test_a_connect_timeout_below_a_second_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tenants", "list", "--connect-timeout", "0.1"])
    assert "'0.1' is not a number of seconds >= 1" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    # `muse config show | head`: no BrokenPipeError traceback when the reader closes the pipe early.
    import subprocess
    import sys

    script = f"{sys.executable} -m muse_stream.cli schemas export --dir {tmp_path} | true"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert list(tmp_path.glob("*.schema.json")), "the command itself ran"
