"""One place for client settings: the security properties file, its merge into every client
config, the connect timeout, librdkafka's logs to Python logging, and the aiokafka translation."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import certifi
import pytest

from muse_stream.clients import settings
from muse_stream.clients.settings import (
    ClientSettings,
    admin_config,
    aiokafka_security,
    artifact_producer_config,
    client_settings,
    consumer_config,
    log_reader_config,
    parse_client_properties,
    producer_config,
    transactional_producer_config,
)
from muse_stream.errors import MuseError

SASL_FILE = """\
# the team's cluster
security.protocol = SASL_SSL
sasl.mechanisms=SCRAM-SHA-512

! a Java-style comment
sasl.username=muse-worker
sasl.password=s3cret=with=equals
ssl.ca.location={ca}
"""


@pytest.fixture
def client_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(SASL_FILE.format(ca=certifi.where()))
    monkeypatch.setenv("MUSE_CLIENT_CONFIG", str(path))
    return path


def _every_client_config() -> dict[str, dict[str, object]]:
    return {
        "admin": admin_config("h:1"),
        "producer": producer_config("h:1"),
        "transactional": transactional_producer_config("h:1", "tx"),
        "artifact": artifact_producer_config("h:1"),
        "consumer": consumer_config("h:1", "g"),
        "log reader": log_reader_config("h:1"),
    }


def test_the_properties_file_is_parsed_with_comments_and_values_holding_equals(tmp_path: Path) -> None:
    parsed = parse_client_properties(SASL_FILE.format(ca="/ca.pem"), "client.properties")
    assert parsed == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "muse-worker",
        "sasl.password": "s3cret=with=equals",
        "ssl.ca.location": "/ca.pem",
    }


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("security.protocol=SSL\nno equals sign here\n", 2, "expected key=value"),
        ("# ok\n\nacks=0\n", 3, "'acks' is not a security setting"),
        ("bootstrap.servers=h:1\n", 1, "MUSE_BOOTSTRAP"),
        ("sasl.username=a\nsasl.username=b\n", 2, "set twice"),
        ("security.protocol=TLS\n", 1, "not one of plaintext, ssl, sasl_plaintext, sasl_ssl"),
        ("=value\n", 1, "expected key=value"),
    ],
)
def test_a_bad_line_is_one_error_naming_file_and_line(text: str, line: int, says: str) -> None:
    with pytest.raises(MuseError, match=f"^/etc/muse.properties:{line}: .*{says}") as raised:
        parse_client_properties(text, "/etc/muse.properties")
    assert "\n" not in str(raised.value)


def test_every_client_config_carries_the_file_security_settings(client_file: Path) -> None:
    for name, config in _every_client_config().items():
        assert config["security.protocol"] == "SASL_SSL", name
        assert config["sasl.username"] == "muse-worker", name
        assert config["sasl.password"] == "s3cret=with=equals", name
        assert config["bootstrap.servers"] == "h:1", name
    # The guarantees stay the code's: the file cannot hold them, and a client's own overrides win.
    assert _every_client_config()["consumer"]["isolation.level"] == "read_committed"
    assert producer_config("h:1", **{"sasl.username": "other"})["sasl.username"] == "other"
    # muse's own local broker is plaintext whatever the file says.
    assert "security.protocol" not in admin_config("h:1", plaintext=True)


def test_without_a_file_no_security_settings_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSE_CLIENT_CONFIG", raising=False)
    for name, config in _every_client_config().items():
        assert not [key for key in config if key.startswith(("security.", "sasl.", "ssl."))], name


def test_a_missing_or_bad_file_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_CLIENT_CONFIG", str(tmp_path / "absent.properties"))
    with pytest.raises(MuseError, match=r"absent\.properties .*MUSE_CLIENT_CONFIG.*No such file"):
        producer_config("h:1")
    bad = tmp_path / "bad.properties"
    bad.write_text("security.protocol=SSL\nlinger.ms=0\n")
    monkeypatch.setenv("MUSE_CLIENT_CONFIG", str(bad))
    with pytest.raises(MuseError, match=rf"^{bad}:2: 'linger.ms' is not a security setting"):
        consumer_config("h:1", "g")


def test_every_client_logs_through_python_logging_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    for name, config in _every_client_config().items():
        assert config["logger"] is settings.LIBRDKAFKA_LOG and config["log_level"] == 0, name
    with caplog.at_level(logging.DEBUG, logger=settings.KAFKA_LOGGER_NAME):
        assert all(config["log_level"] == 7 for config in _every_client_config().values())
        # What confluent-kafka calls with a librdkafka line (its severity mapped to Python's).
        settings.LIBRDKAFKA_LOG.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect failed")
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and record.name == "muse_stream.librdkafka"
    assert record.getMessage() == "ERROR FAIL [rdkafka#producer-1] Connect failed"


def test_the_connect_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSE_CONNECT_TIMEOUT", raising=False)
    assert client_settings().connect_timeout_s == settings.DEFAULT_CONNECT_TIMEOUT_S
    assert producer_config("h:1")["socket.connection.setup.timeout.ms"] == 5000
    monkeypatch.setenv("MUSE_CONNECT_TIMEOUT", "30")
    assert client_settings().connect_timeout_s == 30.0
    assert consumer_config("h:1", "g")["socket.connection.setup.timeout.ms"] == 30_000
    for bad in ("soon", "0.2", "inf", "nan"):
        monkeypatch.setenv("MUSE_CONNECT_TIMEOUT", bad)
        with pytest.raises(MuseError, match=f"MUSE_CONNECT_TIMEOUT='{bad}' is not a number of seconds"):
            client_settings()


def test_aiokafka_gets_the_same_settings(client_file: Path) -> None:
    kwargs = aiokafka_security()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "muse-worker",
        "sasl_plain_password": "s3cret=with=equals",
    }
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded
    assert aiokafka_security(ClientSettings()) == {"security_protocol": "PLAINTEXT"}


def test_aiokafka_refuses_what_it_cannot_express(tmp_path: Path) -> None:
    path = str(tmp_path / "k.properties")
    kerberos = ClientSettings(security={"security.protocol": "SASL_PLAINTEXT", "sasl.kerberos.keytab": "/k"}, security_file=path)
    with pytest.raises(MuseError, match=rf"^{path}: 'sasl.kerberos.keytab' has no aiokafka equivalent"):
        aiokafka_security(kerberos)
    missing_ca = ClientSettings(
        security={"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "ca.pem")}, security_file=path
    )
    with pytest.raises(MuseError, match=rf"^{path}: cannot load the TLS files"):
        aiokafka_security(missing_ca)


def test_a_fair_workers_consumer_prefetches_about_two_batches_not_a_hundred_thousand_records() -> None:
    from muse_stream.clients.settings import worker_prefetch

    assert worker_prefetch(500, fair=True)["queued.min.messages"] == 1000
    assert "queued.min.messages" not in worker_prefetch(500, fair=False)  # librdkafka's 100,000


def test_one_fetch_of_a_worker_brings_at_most_two_batches_not_fifty_mebibytes() -> None:
    # librdkafka checks its queue limits before a fetch, not within one: with librdkafka's 50 MiB, a
    # worker owning 500 backlogged tenant partitions peaked at 1.9x one tenant's memory (1.2x at 8 MiB).
    from confluent_kafka import Consumer

    from muse_stream.clients.settings import worker_prefetch

    for fair in (True, False):
        limits = worker_prefetch(5000, fair=fair)
        assert limits["fetch.max.bytes"] <= 2 * 5000 * 1024
        assert "max.partition.fetch.bytes" not in limits  # 1 MiB: several tenants' partitions fit in one fetch
        Consumer({"group.id": "g", "bootstrap.servers": "127.0.0.1:1", **limits}).close()  # librdkafka takes it


def test_whole_partition_readers_fetch_again_soon_after_their_queue_drains() -> None:
    # librdkafka's default fetch.queue.backoff.ms (1 s) stalled `muse replay` for most of a second
    # each time its bounded prefetch queue filled: 26k events/s, against 43k with 10 ms (muse bench replay).
    config = log_reader_config("h:1")
    assert config["fetch.queue.backoff.ms"] <= 100
