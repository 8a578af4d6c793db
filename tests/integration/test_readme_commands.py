"""The README's command blocks for tenants and operators, run as written, in order, on the real
broker: what a new user types must work, and nothing may end in a traceback."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from muse_stream.broker import BrokerHandle
from muse_stream.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]
MUSE = Path(sys.executable).with_name("muse")
SECTIONS = ("## Tenants and topics", "### Operating it")


def readme_commands(heading: str) -> list[str]:
    """The `muse` lines of the first ```sh block under ``heading``, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading + "\n") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None, f"no sh block under {heading!r} in README.md"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith("muse ")]


def test_the_readme_blocks_run_as_written_on_a_fresh_namespace(kafka: BrokerHandle, topic_names: TopicNames) -> None:
    env = {**os.environ, "MUSE_BOOTSTRAP": kafka.bootstrap, "MUSE_NAMESPACE": topic_names.namespace}
    env.pop("MUSE_CLIENT_CONFIG", None)
    outputs: dict[str, str] = {}
    commands = [command for heading in SECTIONS for command in readme_commands(heading)]
    assert any(c.startswith("muse config apply") for c in commands) and any(c.startswith("muse promote") for c in commands)
    for command in commands:
        argv = shlex.split(command)[1:]
        program = [str(MUSE)] if MUSE.exists() else [sys.executable, "-m", "muse_stream.cli"]
        result = subprocess.run([*program, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert "Traceback" not in result.stderr, f"{command}:\n{result.stderr}"
        assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        outputs[command] = result.stdout
    # What the block's comments promise.
    assert "bank-a" in outputs["muse tenants list"]
    assert "version 1 is live" in outputs["muse config apply topologies/example.toml"]
    assert "version 2 is live" in outputs["muse promote bank-a/card-fraud --to fraud-v2"]
    history = outputs["muse config history"]
    assert re.search(r"^\s*1\s", history, flags=re.M) and re.search(r"^\s*2\s", history, flags=re.M), history
    assert "version 3 is live" in outputs["muse config rollback 1"]
