"""The pure core stays free of Kafka clients, so replay and offline tools reuse it as it is.

The modules are imported in a fresh interpreter: within this test process something else may
already have loaded confluent_kafka.
"""

from __future__ import annotations

import subprocess
import sys

PURE_MODULES = [
    "muse_stream.transforms",
    "muse_stream.predictors",
    "muse_stream.routing",
    "muse_stream.pipeline.scoring",
    "muse_stream.topics",
    "muse_stream.security.acls",
    "muse_stream.security.credentials",
    "muse_stream.events",
    "muse_stream.labels",
    "muse_stream.replay.configs",
    "muse_stream.replay.window",
    "muse_stream.replay.rows",
    "muse_stream.replay.progress",
    "muse_stream.backtest.aggregate",
    "muse_stream.backtest.report",
    "muse_stream.backtest.walk_forward",
    "muse_stream.config",
    "muse_stream.config.deployment",
    "muse_stream.config.files",
    "muse_stream.config.snapshot",
    "muse_stream.config.history",
    "muse_stream.config.plan",
    "muse_stream.config.promotion",
]
KAFKA_CLIENTS = ("confluent_kafka", "aiokafka", "faust")


PROBE = """
import importlib, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
    loaded = [m for m in %r if m in sys.modules]
    if loaded:
        print(module, *loaded)
        break
"""


def test_pure_modules_import_no_kafka_client() -> None:
    # One fresh interpreter imports the modules in turn and names the first that loads a client.
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (KAFKA_CLIENTS,), *PURE_MODULES], capture_output=True, text=True, check=True
    )
    assert result.stdout == "", f"importing {result.stdout.split()[0]} loads {result.stdout.split()[1:]}"
