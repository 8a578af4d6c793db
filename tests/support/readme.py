"""README.md's command blocks, read and run as a user who copies them would: the tests that run them
(tests/integration/test_readme_*.py) share this, so a block is read and run one way only."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUSE = Path(sys.executable).with_name("muse")


def fenced_blocks(start: str) -> list[tuple[str, str]]:
    """The fenced blocks of README.md after the first occurrence of ``start``, in order, as
    (language, body): language "" for a block that shows output."""
    text = (ROOT / "README.md").read_text()
    assert start in text, f"{start!r} is not in README.md"
    return re.findall(r"^```(\w*)\n(.*?)^```$", text[text.index(start) :], flags=re.S | re.M)


def readme_block(start: str, index: int = 0) -> list[str]:
    """The lines of the ``index``-th ```sh block after ``start`` in README.md, stripped, a line
    continued with a trailing backslash joined to the next, blank lines dropped; comments are kept
    (some say what a command prints: :func:`split_comment`)."""
    blocks = [body for language, body in fenced_blocks(start) if language == "sh"]
    assert len(blocks) > index, f"no sh block #{index} after {start!r} in README.md"
    joined = re.sub(r"\\\n\s*", "", blocks[index])
    return [line.strip() for line in joined.splitlines() if line.strip()]


def split_comment(line: str) -> tuple[str, str]:
    """A README line as (command, its trailing comment), both stripped; a comment starts at
    whitespace then ``#`` (or at the start of the line)."""
    command, *comment = re.split(r"(?:^|\s)#", line, maxsplit=1)
    return command.strip(), "".join(comment).strip()


def readme_output(start: str, index: int = 0) -> list[str]:
    """The lines of the ``index``-th output block (a fence without a language) after ``start``."""
    blocks = [body for language, body in fenced_blocks(start) if language == ""]
    assert len(blocks) > index, f"no output block #{index} after {start!r} in README.md"
    return blocks[index].splitlines()


def readme_commands(heading: str, index: int = 0) -> list[str]:
    """The `muse` lines of the ``index``-th ```sh block under ``heading``, comments stripped."""
    commands = [split_comment(line)[0] for line in readme_block(heading + "\n", index)]
    return [command for command in commands if command.startswith("muse ")]


def run_muse(command: str, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 180) -> str:
    """Run one README `muse ...` line; it must succeed without a traceback. Returns its stdout."""
    argv = shlex.split(command)[1:]
    program = [str(MUSE)] if MUSE.exists() else [sys.executable, "-m", "muse_stream.cli"]
    result = subprocess.run([*program, *argv], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, f"{command}:\n{result.stderr}"
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_shell(line: str, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 120) -> str:
    """Run one README line that is not a `muse` command (kcat, ln...) with bash, as a user would;
    it must succeed. Returns its stdout."""
    result = subprocess.run(["bash", "-c", line], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{line} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def muse_environment(bootstrap: str, namespace: str | None = None, **extra: str) -> dict[str, str]:
    """The environment the README's commands run in: this process's, with the broker (and namespace)
    a test chose in place of the README's defaults (127.0.0.1:19092, namespace `muse`)."""
    env = {key: value for key, value in os.environ.items() if key not in ("MUSE_CLIENT_CONFIG", "MUSE_NAMESPACE")}
    return {**env, "MUSE_BOOTSTRAP": bootstrap, **({"MUSE_NAMESPACE": namespace} if namespace else {}), **extra}
