"""Tenants on the secured real broker through the `muse tenants` commands: the client file works
as it is with kcat (a client that is not ours) for the tenant's own topics and nowhere else; a
rotated password stops the old one; removal leaves no credential or ACL behind; and the whole
pipeline (config apply as the operator, a worker as the worker principal) scores a tenant's events."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from muse_stream.broker import BrokerHandle
from muse_stream.cli import main
from muse_stream.clients.security import SecurityAdmin
from muse_stream.clients.settings import CLIENT_CONFIG_ENV
from muse_stream.events import ScoreResult
from muse_stream.replay.run import read_dataset
from muse_stream.security.acls import ADMIN, ANALYST, MONITOR, OPERATOR, WORKER, tenant_principal
from muse_stream.synthetic import events_as_dicts, generate_events
from muse_stream.topics import TopicNames
from tests.support.credentials import logs_in, properties
from tests.support.deploy import deployment, publish
from tests.support.kafka_io import WorkerProcess
from tests.support.predictors import small_predictor

pytestmark = pytest.mark.kafka
A, B = "bank-a", "bank-b"


@pytest.fixture
def as_admin(secure_kafka: BrokerHandle, monkeypatch: pytest.MonkeyPatch) -> BrokerHandle:
    assert secure_kafka.credentials_dir is not None
    monkeypatch.setenv("MUSE_BOOTSTRAP", secure_kafka.bootstrap)
    monkeypatch.setenv(CLIENT_CONFIG_ENV, str(secure_kafka.credentials_dir / f"{ADMIN}.properties"))
    return secure_kafka


def muse(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def add_tenant(capsys: pytest.CaptureFixture[str], names: TopicNames, tenant: str, *extra: str) -> Path:
    out = muse(capsys, "tenants", "add", tenant, "--namespace", names.namespace, *extra)
    path = Path(next(line.split()[1] for line in out.splitlines() if line.startswith("credentials")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


# -- kcat, a client that is not ours ---------------------------------------------------------------


@pytest.fixture(scope="module")
def kcat_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """kcat as installed, run on a librdkafka that can log in to Kafka 4 with SCRAM: Debian's kcat
    links librdkafka 2.0.2, whose SCRAM proof Kafka 4 rejects (fixed in librdkafka 2.6.1,
    confluentinc/librdkafka#4895), so it gets the newer one that confluent-kafka's wheel ships."""
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: `make setup` installs it (apt-get install kcat)", pytrace=False)
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka*.so*"))
    assert bundled, f"no librdkafka in {libs}"
    directory = tmp_path_factory.mktemp("librdkafka")
    (directory / "librdkafka.so.1").symlink_to(bundled[0])
    return {**os.environ, "LD_LIBRARY_PATH": str(directory)}


def kcat(
    env: dict[str, str], bootstrap: str, credentials: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kcat", "-b", bootstrap, "-F", str(credentials), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_kcat_with_a_tenants_file_uses_its_topics_and_no_other_tenants(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str], kcat_env: dict[str, str]
) -> None:
    a_file = add_tenant(capsys, topic_names, A)
    add_tenant(capsys, topic_names, B)
    bootstrap = as_admin.bootstrap
    b_output = topic_names.output_topic(B)
    worker = Producer({"bootstrap.servers": bootstrap, **properties(as_admin.credentials_dir / f"{WORKER}.properties")})
    worker.produce(b_output, b"b's score")  # something of B's to (fail to) steal
    assert worker.flush(30) == 0

    wrote = kcat(kcat_env, bootstrap, a_file, "-P", "-t", topic_names.input_topic(A), stdin='{"event_id": "a1"}\n')
    assert wrote.returncode == 0 and "failed" not in wrote.stderr, wrote.stderr

    injected = kcat(kcat_env, bootstrap, a_file, "-P", "-t", topic_names.input_topic(B), stdin='{"event_id": "evil"}\n')
    assert "Topic authorization failed" in injected.stderr, injected.stderr
    stolen = kcat(kcat_env, bootstrap, a_file, "-C", "-t", b_output, "-o", "beginning", "-e", "-c", "1")
    assert stolen.returncode != 0 and "Topic authorization failed" in stolen.stderr, stolen.stderr
    assert stolen.stdout == ""
    listing = kcat(kcat_env, bootstrap, a_file, "-L")
    assert listing.returncode == 0, listing.stderr
    assert topic_names.tenant_prefix(A) in listing.stdout and topic_names.tenant_prefix(B) not in listing.stdout
    # Nothing of B's input came from A.
    admin_file = as_admin.credentials_dir / f"{ADMIN}.properties"
    b_input = kcat(kcat_env, bootstrap, admin_file, "-C", "-t", topic_names.input_topic(B), "-o", "beginning", "-e")
    assert "evil" not in b_input.stdout


def test_a_rotated_password_stops_the_old_one(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = add_tenant(capsys, topic_names, A)
    old = tmp_path / "old.properties"
    shutil.copy(first, old)
    assert logs_in(as_admin.bootstrap, old)

    out = muse(capsys, "tenants", "credentials", A, "--rotate", "--namespace", topic_names.namespace)
    assert str(first) in out
    assert properties(first)["sasl.password"] != properties(old)["sasl.password"]
    assert logs_in(as_admin.bootstrap, first)
    assert not logs_in(as_admin.bootstrap, old)


def test_removing_a_tenant_leaves_no_credential_or_acl_behind(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a_file = shutil.copy(add_tenant(capsys, topic_names, A), tmp_path / "a.properties")
    add_tenant(capsys, topic_names, B)
    security = SecurityAdmin(as_admin.bootstrap)
    principal = tenant_principal(topic_names, A)
    prefix = topic_names.tenant_prefix(A)

    def traces() -> list[object]:
        return [acl for acl in security.acls() if acl.principal == principal or acl.name.startswith(prefix)]

    assert principal in security.users() and traces()
    b_rules = [acl for acl in security.acls() if acl.name.startswith(topic_names.tenant_prefix(B))]

    muse(capsys, "tenants", "remove", A, "--namespace", topic_names.namespace, "--delete-topics")
    assert principal not in security.users()
    assert traces() == []
    assert not logs_in(as_admin.bootstrap, a_file)
    assert not (as_admin.credentials_dir / "tenants" / f"{principal}.properties").exists()
    assert not any(
        topic.startswith(prefix)
        for topic in AdminClient({"bootstrap.servers": as_admin.bootstrap, **properties(Path(os.environ[CLIENT_CONFIG_ENV]))})
        .list_topics(timeout=10)
        .topics
    )
    # The other tenant keeps every rule of its own.
    assert [acl for acl in security.acls() if acl.name.startswith(topic_names.tenant_prefix(B))] == b_rules


def test_quotas_are_set_on_the_tenants_principal_and_listed(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str]
) -> None:
    add_tenant(capsys, topic_names, A, "--produce-byte-rate", "1048576", "--request-percentage", "25")
    add_tenant(capsys, topic_names, B)
    listing = muse(capsys, "tenants", "list", "--namespace", topic_names.namespace)
    rows = {line.split("\t")[0]: line for line in listing.splitlines()}
    assert "quota=produce=1048576B/s,requests=25%" in rows[A]
    assert "quota" not in rows[B]
    muse(capsys, "tenants", "remove", A, "--namespace", topic_names.namespace)
    listing = muse(capsys, "tenants", "list", "--namespace", topic_names.namespace)
    assert "quota" not in listing


# -- the pipeline on the secured broker --------------------------------------------------------------


@pytest.fixture
def secured_worker(as_admin: BrokerHandle, topic_names: TopicNames, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker_file = as_admin.credentials_dir / f"{WORKER}.properties"
    process = WorkerProcess(
        as_admin.bootstrap, topic_names.namespace, "w1", tmp_path, "--client-config", str(worker_file)
    ).start()
    yield process
    process.stop()


def test_the_pipeline_scores_a_tenants_events_with_each_principal_doing_its_part(
    as_admin: BrokerHandle,
    topic_names: TopicNames,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_file = add_tenant(capsys, topic_names, A)
    add_tenant(capsys, topic_names, B)
    store = tmp_path / "models"
    model = small_predictor(store, name="fraud", version="1")
    # The operator applies the config (no admin rights needed).
    monkeypatch.setenv(CLIENT_CONFIG_ENV, str(as_admin.credentials_dir / f"{OPERATOR}.properties"))
    config = deployment([A, B], {"fraud-v1": model}, {(t, "card-fraud"): ("fraud-v1", ()) for t in (A, B)})
    assert publish(as_admin.bootstrap, topic_names, config, {"fraud-v1": model}, store) == 1
    worker = WorkerProcess(
        as_admin.bootstrap,
        topic_names.namespace,
        "w1",
        tmp_path,
        "--client-config",
        str(as_admin.credentials_dir / f"{WORKER}.properties"),
    ).start()
    try:
        # The tenant's own plain client, configured from its file as it stands.
        tenant = {"bootstrap.servers": as_admin.bootstrap, **properties(a_file)}
        X, _ = generate_events(20, seed=5)
        producer = Producer(tenant)
        for i, features in enumerate(events_as_dicts(X)):
            producer.produce(
                topic_names.input_topic(A),
                key=f"k{i}".encode(),
                value=orjson.dumps({"event_id": f"a{i}", "intent": "card-fraud", "features": features}),
            )
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                **tenant,
                "group.id": topic_names.tenant_prefix(A) + f"scores-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([topic_names.output_topic(A)])
        results: list[ScoreResult] = []
        deadline = time.monotonic() + 90
        while len(results) < 20 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                results.append(ScoreResult.model_validate_json(message.value()))
        consumer.close()
        assert sorted(r.event_id for r in results) == sorted(f"a{i}" for i in range(20)), worker.log_tail()
        assert all(r.tenant == A and 0.0 <= r.score <= 1.0 for r in results)
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    # The monitor, as its principal, counts what the worker committed.
    _monitor_counts(as_admin, topic_names, A, len(results), tmp_path)
    # The analyst replays those events with the live config and version 1 from the history.
    monkeypatch.setenv(CLIENT_CONFIG_ENV, str(as_admin.credentials_dir / f"{ANALYST}.properties"))
    out = muse(
        capsys,
        "replay",
        "--namespace",
        topic_names.namespace,
        "--tenant",
        A,
        "--config",
        "live",
        "--config-version",
        "1",
        "--out",
        str(tmp_path / "replay"),
    )
    assert "replayed 20 events" in out
    replayed = read_dataset(tmp_path / "replay").to_table().to_pylist()
    live = {r.event_id: r.score for r in results}
    assert {row["event_id"] for row in replayed} == set(live)
    assert all(row["score"] == live[row["event_id"]] for row in replayed if row["role"] == "live")


def _monitor_counts(as_admin: BrokerHandle, names: TopicNames, tenant: str, expected: int, tmp_path: Path) -> None:
    """`muse monitor --client-config` logs its Faust (aiokafka) clients in as muse-monitor (without
    the security settings Faust could not even connect to the SASL listener) and counts the results
    the worker committed on ``tenant``'s output: lz4-compressed, written as the worker principal."""
    from tests.integration.test_monitor import _free_port, _poll

    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != CLIENT_CONFIG_ENV}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "muse_stream.cli",
            "monitor",
            "--namespace",
            names.namespace,
            "--web-port",
            str(port),
            "--data-dir",
            str(tmp_path / "faust"),
            "--rescan",
            "1",
            "--client-config",
            str(as_admin.credentials_dir / f"{MONITOR}.properties"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        answer = _poll(port, f"/tenants/{tenant}/", lambda a: a.get("retained", {}).get("count") == expected, timeout=90)
        assert answer["tenant"] == tenant
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]


def test_tls_broker_hands_tenants_a_file_with_its_ca(
    kcat_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`muse broker start --secure --tls`: SASL_SSL with a CA made locally; a tenant's file names the
    CA, and works as it is with kcat; the same login without TLS is not served."""
    from muse_stream.broker.selection import throwaway_broker

    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    with throwaway_broker(secure=True, tls=True) as broker:
        assert broker.credentials_dir is not None
        monkeypatch.setenv("MUSE_BOOTSTRAP", broker.bootstrap)
        monkeypatch.setenv(CLIENT_CONFIG_ENV, str(broker.credentials_dir / f"{ADMIN}.properties"))
        a_file = add_tenant(capsys, names, A)
        settings = properties(a_file)
        assert settings["security.protocol"] == "SASL_SSL"
        assert Path(settings["ssl.ca.location"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        listing = kcat(kcat_env, broker.bootstrap, a_file, "-L")
        assert listing.returncode == 0 and names.input_topic(A) in listing.stdout, listing.stderr
        plain = {**settings, "security.protocol": "SASL_PLAINTEXT"}
        plain.pop("ssl.ca.location")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, **plain, "log_level": 0})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)


def test_a_tenants_produce_quota_throttles_its_producer_and_not_another_tenants(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quota is Kafka's, on the tenant's principal: the broker throttles that tenant's own client
    (librdkafka's throttle callback), and not another tenant's sending the same burst."""
    a_file = add_tenant(capsys, topic_names, A, "--produce-byte-rate", "8192")
    b_file = add_tenant(capsys, topic_names, B)

    def throttle_of(tenant: str, path: Path) -> int:
        """The largest throttle time (ms) the broker asked for while the tenant sent 512 KiB at once."""
        throttles: list[int] = []
        producer = Producer(
            {
                "bootstrap.servers": as_admin.bootstrap,
                **properties(path),
                "linger.ms": 5,
                "throttle_cb": lambda event: throttles.append(int(event.throttle_time * 1000)),
            }
        )
        for _ in range(512):
            producer.produce(topic_names.input_topic(tenant), value=b"x" * 1024)
            producer.poll(0)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not throttles and len(producer) > 0:
            producer.poll(0.2)
        producer.poll(1.0)  # a throttle reported with the last acknowledgements
        producer.purge()
        producer.flush(5)
        return max(throttles, default=0)

    assert throttle_of(A, a_file) > 0, "the broker never throttled the tenant with a quota"
    assert throttle_of(B, b_file) == 0, "the tenant without a quota was throttled"


def test_config_apply_plan_and_history_run_as_the_operator(
    as_admin: BrokerHandle,
    topic_names: TopicNames,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from config_support import write_topology

    for tenant in ("bank-a", "bank-b", "bank-c"):
        add_tenant(capsys, topic_names, tenant)
    monkeypatch.setenv(CLIENT_CONFIG_ENV, str(as_admin.credentials_dir / f"{OPERATOR}.properties"))
    config = ["config", "--namespace", topic_names.namespace]
    topology = write_topology(tmp_path)
    assert "+ tenant bank-a" in muse(capsys, *config, "plan", str(topology))
    assert muse(capsys, *config, "apply", str(topology)).strip().endswith("version 1 is live")
    assert "1" in muse(capsys, *config, "history")
    # The tenant cannot do the operator's job with its own login.
    monkeypatch.setenv(
        CLIENT_CONFIG_ENV, str(as_admin.credentials_dir / "tenants" / f"{tenant_principal(topic_names, 'bank-a')}.properties")
    )
    capsys.readouterr()
    assert main([*config, "apply", str(topology)]) == 2
    assert "not visible to this login, which may not create it" in capsys.readouterr().err


def test_a_tenants_login_gets_one_line_refusals_for_admin_commands(
    as_admin: BrokerHandle, topic_names: TopicNames, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a child process: confluent-kafka aborts the process when a SCRAM listing is refused, which
    muse must never let happen."""
    a_file = add_tenant(capsys, topic_names, A)
    env = {**os.environ, "MUSE_BOOTSTRAP": as_admin.bootstrap, CLIENT_CONFIG_ENV: str(a_file)}
    ns = ["--namespace", topic_names.namespace]
    for argv, says in (
        (["tenants", "credentials", A, "--rotate"], "may not manage credentials and ACLs"),
        (["tenants", "remove", B], "may not manage credentials and ACLs"),
        (["tenants", "add", B], "not visible to this login, which may not create it"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "muse_stream.cli", *argv, *ns],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (argv, done.returncode, done.stderr[-2000:])
        lines = [line for line in done.stderr.splitlines() if not line.startswith("%")]
        assert len(lines) == 1 and says in lines[0], lines
    assert logs_in(as_admin.bootstrap, a_file)  # nothing was rotated
