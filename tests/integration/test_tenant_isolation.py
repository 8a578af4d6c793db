"""Tenant isolation on the secured real broker (`muse broker start --secure`): every principal muse
creates, times every operation, times every kind of resource; exactly the cells written out below
succeed and every other one is refused with an authorization error.

The expected rights are written out here by hand, not derived from muse_stream.security.acls, so a
wrong rule in that table fails this test. The clients are plain confluent-kafka clients configured
from each principal's client properties file, nothing of muse's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from muse_stream.broker import BrokerHandle
from muse_stream.clients.admin import TopicAdmin, ensure_tenant_topics
from muse_stream.clients.security import SecurityAdmin
from muse_stream.clients.settings import CLIENT_CONFIG_ENV
from muse_stream.clients.tenant_access import grant_tenant
from muse_stream.security.acls import ADMIN, ANALYST, MONITOR, OPERATOR, WORKER, tenant_principal
from muse_stream.topics import TopicNames
from tests.support.credentials import properties

pytestmark = pytest.mark.kafka
A, B = "bank-a", "bank-b"
OK, DENIED = "ok", "denied"
AUTH_ERRORS = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


@dataclass(frozen=True)
class Secured:
    bootstrap: str
    names: TopicNames
    files: dict[str, Path]  # principal label -> client properties file

    def config(self, who: str, **extra: object) -> dict[str, object]:
        return {"bootstrap.servers": self.bootstrap, **properties(self.files[who]), **extra}


@pytest.fixture(scope="module")
def secured(secure_kafka: BrokerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """Two tenants added as `muse tenants add` does in secure mode, as the admin."""
    assert secure_kafka.credentials_dir is not None
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    out = tmp_path_factory.mktemp("tenant-credentials")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CLIENT_CONFIG_ENV, str(secure_kafka.credentials_dir / f"{ADMIN}.properties"))
        ensure_tenant_topics(TopicAdmin(secure_kafka.bootstrap), names, [A, B])
        security = SecurityAdmin(secure_kafka.bootstrap)
        files = {
            tenant: grant_tenant(security, names, tenant, out / f"{tenant}.properties").credentials_file for tenant in (A, B)
        }
    files.update({who: secure_kafka.credentials_dir / f"{who}.properties" for who in (ADMIN, WORKER, OPERATOR, MONITOR, ANALYST)})
    yield Secured(secure_kafka.bootstrap, names, files)


# -- the resources of the matrix --------------------------------------------------------------------


def topics(names: TopicNames) -> dict[str, str]:
    found = {f"{t}.{kind}": names.tenant_topic(t, kind) for t in (A, B) for kind in ("input", "output", "dlq", "labels")}
    found.update(
        config=names.config_topic, models=names.models_topic, shadow=names.shadow_topic, history=names.config_history_topic
    )
    return found


def groups(names: TopicNames) -> dict[str, str]:
    return {
        f"{A}.group": names.tenant_prefix(A) + "app",
        f"{B}.group": names.tenant_prefix(B) + "app",
        "workers": names.worker_group,
        "monitor": names.monitor_app_id,
    }


def transactional_ids(names: TopicNames) -> dict[str, str]:
    return {
        f"{A}.tx": names.tenant_prefix(A) + "tx",
        f"{B}.tx": names.tenant_prefix(B) + "tx",
        "workers.tx": f"{names.worker_group}.w1",
        "config.tx": f"muse-config.{names.namespace}",
    }


# Written out by hand: (operation, resource) cells each principal may do; all others must be refused.
def _cells(op: str, *resources: str) -> set[tuple[str, str]]:
    return {(op, resource) for resource in resources}


ALLOWED: dict[str, set[tuple[str, str]]] = {
    A: (
        _cells("produce", "bank-a.input")
        | _cells("consume", "bank-a.output", "bank-a.dlq", "bank-a.labels")
        | _cells("describe", "bank-a.input", "bank-a.output", "bank-a.dlq", "bank-a.labels")
        | _cells("join group", "bank-a.group")
        | _cells("init transactions", "bank-a.tx")
    ),
    WORKER: (
        _cells("produce", "bank-a.output", "bank-a.dlq", "bank-b.output", "bank-b.dlq", "shadow")
        | _cells("consume", "bank-a.input", "bank-b.input", "config", "models")
        | _cells(
            "describe",
            "bank-a.input",
            "bank-a.output",
            "bank-a.dlq",
            "bank-b.input",
            "bank-b.output",
            "bank-b.dlq",
            "config",
            "models",
            "shadow",
        )
        | _cells("join group", "workers")
        | _cells("init transactions", "workers.tx")
    ),
    OPERATOR: (
        _cells("produce", "config", "history", "models")
        | _cells("consume", "config", "history", "models", "shadow", "bank-a.output", "bank-b.output")
        | _cells("describe", "config", "history", "models", "shadow", "bank-a.output", "bank-b.output")
        | _cells("init transactions", "config.tx")
    ),
    MONITOR: (
        _cells("consume", "bank-a.output", "bank-b.output")
        | _cells("describe", "bank-a.output", "bank-b.output")
        | _cells("join group", "monitor")
    ),
    ANALYST: (
        _cells("consume", *(f"{t}.{k}" for t in (A, B) for k in ("input", "output", "labels")), "config", "history", "models")
        | _cells("describe", *(f"{t}.{k}" for t in (A, B) for k in ("input", "output", "labels")), "config", "history", "models")
    ),
}
# A topic each principal may read, to subscribe to when joining a group.
READABLE = {A: "bank-a.output", WORKER: "bank-a.input", OPERATOR: "shadow", MONITOR: "bank-a.output", ANALYST: "bank-a.input"}
TIMEOUT_S = 20.0


def _refused(error: KafkaError | None, what: str) -> str:
    if error is None:
        return OK
    if error.code() in AUTH_ERRORS:
        return DENIED
    raise AssertionError(f"{what}: not an authorization error but {error}")


def _kafka_error(exc: KafkaException) -> KafkaError:
    return exc.args[0]


def produce_all(s: Secured, who: str) -> dict[str, str]:
    """One record to each topic; one plain (non-idempotent) producer, so a principal with no right
    to write anywhere still gets per-topic answers."""
    producer = Producer(
        s.config(
            who,
            **{
                "enable.idempotence": False,
                "acks": "all",
                "message.timeout.ms": 15000,
                "topic.metadata.refresh.interval.ms": 1000,
            },
        )
    )
    outcome: dict[str, str] = {}
    for label, topic in topics(s.names).items():
        producer.produce(
            topic,
            key=b"k",
            value=b"{}",
            on_delivery=lambda err, msg, label=label: outcome.__setitem__(label, _refused(err, f"{who} produce {label}")),
        )
    producer.flush(TIMEOUT_S + 5)
    assert len(outcome) == len(topics(s.names)), f"{who}: undelivered {set(topics(s.names)) - set(outcome)}"
    return outcome


def consume(s: Secured, who: str, topic: str) -> str:
    consumer = Consumer(
        s.config(
            who, **{"group.id": f"unused-{uuid.uuid4().hex}", "enable.auto.commit": False, "isolation.level": "read_uncommitted"}
        )
    )
    try:
        # A topic the principal may not even see has no leader to fetch from: librdkafka waits for
        # one silently, so the refusal to read it is the refusal of its metadata.
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
        if metadata.error is not None:
            return _refused(metadata.error, f"{who} consume {topic} (metadata)")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return OK
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                return DENIED
            if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                continue  # the unused group's coordinator lookup; this cell is about the topic
            raise AssertionError(f"{who} consume {topic}: {error}")
        raise AssertionError(f"{who} consume {topic}: neither a record nor a refusal in {TIMEOUT_S:.0f} s")
    finally:
        consumer.close()


def describe(admin: AdminClient, who: str, topic: str) -> str:
    future = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT_S)[topic]
    try:
        future.result()
        return OK
    except KafkaException as exc:
        return _refused(_kafka_error(exc), f"{who} describe {topic}")


def alter_configs(admin: AdminClient, who: str, topic: str) -> str:
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)],
    )
    try:
        admin.incremental_alter_configs([resource], validate_only=True, request_timeout=TIMEOUT_S)[resource].result()
        return OK
    except KafkaException as exc:
        return _refused(_kafka_error(exc), f"{who} alter configs {topic}")


def join_group(s: Secured, who: str, group: str) -> str:
    assigned = threading.Event()
    consumer = Consumer(s.config(who, **{"group.id": group, "enable.auto.commit": False, "session.timeout.ms": 6000}))
    try:
        consumer.subscribe([topics(s.names)[READABLE[who]]], on_assign=lambda c, p: assigned.set())
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and not assigned.is_set():
            message = consumer.poll(0.3)
            if message is not None and message.error() is not None:
                if message.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    return DENIED
                if message.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"{who} join {group}: {message.error()}")
        if assigned.is_set():
            return OK
        raise AssertionError(f"{who} join {group}: neither an assignment nor a refusal in {TIMEOUT_S:.0f} s")
    finally:
        consumer.close()


def init_transactions(s: Secured, who: str, transactional_id: str) -> str:
    producer = Producer(s.config(who, **{"transactional.id": transactional_id}))
    try:
        producer.init_transactions(TIMEOUT_S)
        return OK
    except KafkaException as exc:
        return _refused(_kafka_error(exc), f"{who} init transactions {transactional_id}")


def matrix(s: Secured, who: str) -> dict[tuple[str, str], str]:
    """Each cell is its own request, answered for its own resource. Describe and alter-configs cells
    share one admin client of the principal (a client per cell cost a login and a connection each,
    the most of this test's time); consumers, groups and transactional producers are one per cell."""
    admin = AdminClient(s.config(who))
    jobs: list[tuple[tuple[str, str], Callable[[], str]]] = []
    for label, topic in topics(s.names).items():
        jobs += [
            (("consume", label), lambda t=topic: consume(s, who, t)),
            (("describe", label), lambda t=topic: describe(admin, who, t)),
            (("alter configs", label), lambda t=topic: alter_configs(admin, who, t)),
        ]
    jobs += [(("join group", label), lambda g=group: join_group(s, who, g)) for label, group in groups(s.names).items()]
    jobs += [
        (("init transactions", label), lambda x=txn: init_transactions(s, who, x))
        for label, txn in transactional_ids(s.names).items()
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {cell: pool.submit(job) for cell, job in jobs}
        outcome = {cell: future.result() for cell, future in futures.items()}
    outcome.update({("produce", label): result for label, result in produce_all(s, who).items()})
    return outcome


@pytest.fixture(scope="module")
def seeded(secured: Secured) -> Secured:
    """One record in every topic (as the admin), so an allowed consume has something to read."""
    produce_all(secured, ADMIN)
    return secured


@pytest.mark.parametrize("who", [A, WORKER, OPERATOR, MONITOR, ANALYST])
def test_exactly_the_allowed_cells_succeed_and_every_other_is_refused(seeded: Secured, who: str) -> None:
    outcome = matrix(seeded, who)
    assert len(outcome) == 4 * len(topics(seeded.names)) + len(groups(seeded.names)) + len(transactional_ids(seeded.names))
    unexpected_ok = sorted(cell for cell, result in outcome.items() if result == OK and cell not in ALLOWED[who])
    unexpected_denied = sorted(cell for cell, result in outcome.items() if result == DENIED and cell in ALLOWED[who])
    assert (unexpected_ok, unexpected_denied) == ([], []), f"{who}: allowed but should not be / refused but should not be"
    assert ALLOWED[who] <= set(outcome)


def test_tenant_principal_is_named_after_its_prefix(secured: Secured) -> None:
    assert (
        properties(secured.files[A])["sasl.username"]
        == tenant_principal(secured.names, A)
        == f"{secured.names.namespace}.tenant.{A}"
    )
