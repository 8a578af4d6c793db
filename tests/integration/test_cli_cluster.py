"""The real `muse` command and its cluster: a wrong address is one clear line within seconds, the
global options work after the action, and the client settings file reaches every client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muse_stream.broker import BrokerHandle
from muse_stream.broker.selection import _check_reachable
from muse_stream.clients.admin import ClusterUnreachable, TopicAdmin
from muse_stream.topics import TopicNames

NOWHERE = "127.0.0.1:1"  # nothing listens on port 1: every connection is refused at once
MUSE = Path(sys.executable).with_name("muse")


def _muse(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [str(MUSE)] if MUSE.exists() else [sys.executable, "-m", "muse_stream.cli"]
    return subprocess.Popen([*command, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MUSE_BOOTSTRAP", "MUSE_CONNECT_TIMEOUT", "MUSE_CLIENT_CONFIG", "MUSE_NAMESPACE")
    }
    return {**env, **extra}


def test_a_wrong_address_is_one_clear_line_within_seconds(tmp_path: Path) -> None:
    commands = {
        "tenants list": ["tenants", "list"],
        "config show": ["config", "show"],
        "worker": ["worker", "--worker-id", "w1"],
        "demo": ["demo", "--events-per-tenant", "10"],
    }
    env = _env(MUSE_BOOTSTRAP=NOWHERE, MUSE_HOME=str(tmp_path))
    for name, argv in commands.items():  # one after the other: start-up takes CPU, and this machine may be busy
        began = time.monotonic()
        process = _muse(*argv, env=env)
        _, err = process.communicate(timeout=90)
        elapsed = time.monotonic() - began
        assert process.returncode != 0, name
        assert elapsed < 15, f"{name} took {elapsed:.1f} s"
        assert "Traceback" not in err and "%3|" not in err and "FAIL" not in err, f"{name}: {err[:2000]}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"{name}: {err[:2000]}"
        assert NOWHERE in lines[0] and "MUSE_BOOTSTRAP" in lines[0] and "--connect-timeout" in lines[0], name
        assert lines[0].startswith("muse: error: cannot reach Kafka at 127.0.0.1:1 (from MUSE_BOOTSTRAP) within 5 s")


def test_the_connect_timeout_and_debug_logging_are_honoured() -> None:
    process = _muse("tenants", "list", "--connect-timeout", "2", "--log-level", "debug", env=_env(MUSE_BOOTSTRAP=NOWHERE))
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "within 2 s" in err and "Traceback" not in err
    # librdkafka's own lines go through logging, visible at debug only.
    assert "DEBUG muse_stream.librdkafka: ERROR FAIL" in err and "%3|" not in err
    process = _muse("tenants", "list", env=_env(MUSE_BOOTSTRAP=NOWHERE, MUSE_CONNECT_TIMEOUT="1"))
    _, err = process.communicate(timeout=60)
    assert "within 1 s" in err


def test_the_local_broker_as_source_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_CONNECT_TIMEOUT", "1")
    with pytest.raises(
        ClusterUnreachable,
        match=r"127\.0\.0\.1:1 \(the local broker, as MUSE_BOOTSTRAP is not set\) "
        r"within 1 s: .*`muse broker status`",
    ):
        _check_reachable(NOWHERE, from_env=False)


@pytest.mark.kafka
def test_namespace_after_the_action_and_the_client_config_file_on_a_real_broker(
    kafka: BrokerHandle, admin: TopicAdmin, topic_names: TopicNames, tmp_path: Path
) -> None:
    admin.ensure(topic_names.tenant_topic_specs("bank-a", partitions=2))
    client_file = tmp_path / "client.properties"
    client_file.write_text("# the throwaway broker has a plaintext listener\nsecurity.protocol=PLAINTEXT\n")
    env = _env(MUSE_BOOTSTRAP=kafka.bootstrap)
    process = _muse("tenants", "list", "--namespace", topic_names.namespace, "--client-config", str(client_file), env=env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.startswith("bank-a\tpartitions=2\t")
    process = _muse("tenants", "list", env={**env, "MUSE_NAMESPACE": topic_names.namespace})
    assert process.communicate(timeout=60)[0].startswith("bank-a\tpartitions=2\t")

    # The file reaches the clients: one its settings cannot work with is refused by the cluster.
    client_file.write_text("security.protocol=SSL\n")
    process = _muse(
        "tenants",
        "list",
        "--namespace",
        topic_names.namespace,
        "--connect-timeout",
        "2",
        env={**env, "MUSE_CLIENT_CONFIG": str(client_file)},
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and len(err.strip().splitlines()) == 1, err
    assert f"the security settings in {client_file} match its listener" in err

    client_file.write_text("security.protocol=PLAINTEXT\nacks=0\n")
    process = _muse("tenants", "list", "--client-config", str(client_file), env=env)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert (
        err.strip() == f"muse: error: {client_file}:2: 'acks' is not a security setting; a client config file "
        "holds only security.protocol, ssl.* and sasl.* (the bootstrap address goes in MUSE_BOOTSTRAP)"
    )
