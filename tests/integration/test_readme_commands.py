"""The README's command blocks for tenants and operators, run as written, in order, on the real
broker: what a new user types must work, and nothing may end in a traceback."""

from __future__ import annotations

import re

from muse_stream.broker import BrokerHandle
from muse_stream.topics import TopicNames
from tests.support.readme import muse_environment, readme_commands, run_muse

SECTIONS = ("## Tenants and topics", "### Operating it")


def test_the_readme_blocks_run_as_written_on_a_fresh_namespace(kafka: BrokerHandle, topic_names: TopicNames) -> None:
    env = muse_environment(kafka.bootstrap, topic_names.namespace)
    commands = [command for heading in SECTIONS for command in readme_commands(heading)]
    assert any(c.startswith("muse config apply") for c in commands) and any(c.startswith("muse promote") for c in commands)
    outputs = {command: run_muse(command, env) for command in commands}
    # What the block's comments promise.
    assert "bank-a" in outputs["muse tenants list"]
    assert "version 1 is live" in outputs["muse config apply topologies/example.toml"]
    assert "version 2 is live" in outputs["muse promote bank-a/card-fraud --to fraud-v2"]
    history = outputs["muse config history"]
    assert re.search(r"^\s*1\s", history, flags=re.M) and re.search(r"^\s*2\s", history, flags=re.M), history
    assert "version 3 is live" in outputs["muse config rollback 1"]
