"""The local broker's lifecycle: idempotent start, stop that leaves no process, clear errors."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from muse_stream.broker import BrokerStatus, LocalBroker
from muse_stream.broker.kafka_jars import BrokerSetupError
from muse_stream.broker.local import free_port_pair

pytestmark = pytest.mark.kafka


def _has_process(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_start_is_idempotent_stop_leaves_no_process_and_the_broker_is_not_secured_in_place(tmp_path: Path) -> None:
    """One broker started and stopped for both: a start costs tens of seconds on a busy machine."""
    broker = LocalBroker(home=tmp_path / "broker", port=free_port_pair(30000, 30600), heap="512m")
    assert broker.status() is BrokerStatus.STOPPED
    assert broker.start() is True
    try:
        pid = broker.running_pid()
        assert pid is not None and _has_process(pid)
        assert broker.status() is BrokerStatus.RUNNING
        assert broker.is_ready()
        assert broker.start() is False  # reports the running broker instead of starting another
        assert broker.running_pid() == pid
    finally:
        assert broker.stop() is True
    assert not _has_process(pid)
    assert broker.status() is BrokerStatus.STOPPED
    assert broker.stop() is False
    # Formatted without --secure: it keeps its data, so it is not secured in place.
    with pytest.raises(BrokerSetupError, match="formatted without --secure.*another MUSE_HOME"):
        broker.start(secure=True)
    assert broker.status() is BrokerStatus.STOPPED


def test_a_stale_pid_file_is_reported_and_never_signalled(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path, port=free_port_pair(30000, 30600))
    tmp_path.mkdir(exist_ok=True)
    # Our own pid with a wrong start time: a recycled pid must not be taken for the broker.
    broker.pid_file.write_text(f"{os.getpid()} 1\n")
    assert broker.status() is BrokerStatus.STALE_PID
    assert broker.stop() is False
    assert broker.status() is BrokerStatus.STOPPED


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port_pair(30000, 30600)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT from a test before
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(BrokerSetupError, match=f"port {port} on 127.0.0.1 .*MUSE_BROKER_PORT"):
            LocalBroker(home=tmp_path, port=port).start()


def test_a_broker_that_dies_while_starting_shows_its_log(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path, port=free_port_pair(30000, 30600), heap="not-a-size")
    with pytest.raises(BrokerSetupError, match=r"exited with code \d+ while starting; last lines of .*broker\.log"):
        broker.start()
    assert broker.status() is BrokerStatus.STOPPED


def test_muse_broker_start_secure_prints_the_credential_files_and_commands_log_in_as_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import stat

    from muse_stream.cli import main

    port = free_port_pair(30000, 30600)
    monkeypatch.setenv("MUSE_HOME", str(tmp_path))
    monkeypatch.setenv("MUSE_BROKER_PORT", str(port))
    for name in ("MUSE_BOOTSTRAP", "MUSE_CLIENT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert main(["broker", "start", "--secure"]) == 0
    try:
        out = capsys.readouterr().out
        files = [Path(line.split()[1]) for line in out.splitlines() if line.startswith("  ")]
        assert [f.stem for f in files] == ["admin", "muse-worker", "muse-operator", "muse-monitor", "muse-analyst"]
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert stat.S_IMODE((tmp_path / "broker" / "server.properties").stat().st_mode) == 0o600
        assert main(["broker", "status"]) == 0 and "secured" in capsys.readouterr().out
        # No client config given: the command logs in as the secured local broker's admin.
        assert main(["tenants", "add", "bank-a", "--namespace", "sec"]) == 0
        assert "credentials  " in capsys.readouterr().out
        # A client without a login is not served at all.
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        with pytest.raises(KafkaException):
            AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0}).list_topics(timeout=3)
    finally:
        assert main(["broker", "stop"]) == 0
