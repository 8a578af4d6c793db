"""Topic administration: idempotent creation that reads its result back and checks it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from muse_stream.clients.settings import (
    CONNECT_TIMEOUT_ENV,
    admin_config,
    client_settings,
)
from muse_stream.errors import MuseError
from muse_stream.topics import (
    DEFAULT_NAMESPACE,
    DEFAULT_RETENTION_MS,
    RETAINED_KINDS,
    TENANT_TOPIC_KINDS,
    TopicError,
    TopicNames,
    TopicSpec,
    describe_retention,
)

ADMIN_TIMEOUT_S = 30.0
# What a partition created a moment ago answers until its leader serves it.
_NOT_SERVED_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
# Topics get 3 replicas where the cluster has 3 brokers or more (fewer otherwise, never more than the
# brokers), and with 3, need 2 in sync for a write to count: one broker may be lost without losing
# or refusing a committed record.
MAX_REPLICATION = 3
MIN_INSYNC_AT_FULL_REPLICATION = "2"
# Topics per CreateTopics/DeleteTopics request: a single request for 1,500 topics (500 tenants)
# can outlast the admin timeout on a small broker.
ADMIN_REQUEST_TOPICS = 300
_TENANT_TOPIC = re.compile(r"^(?P<namespace>[^.]+)\.tenant\.(?P<tenant>[^.]+)\.")


def grow_hint(topic: str, partitions: int) -> str:
    """What to run to give ``topic`` ``partitions`` partitions (Kafka only ever adds partitions)."""
    match = _TENANT_TOPIC.match(topic)
    if match is None:
        return "Kafka topics only grow: delete the topic to recreate it with more partitions, or ask for fewer"
    where = "" if match["namespace"] == DEFAULT_NAMESPACE else f" (namespace {match['namespace']})"
    return f"grow it with `muse tenants alter {match['tenant']} --partitions {partitions}`{where}, or ask for fewer"


class TopicAccessDenied(TopicError):
    """This login may not see or create a topic (a secured cluster where topics are the admin's)."""


def replication_for(brokers: int) -> tuple[int, dict[str, str]]:
    """The replication factor and durability configs of a new topic on a cluster of ``brokers``."""
    factor = max(1, min(MAX_REPLICATION, brokers))
    return factor, ({"min.insync.replicas": MIN_INSYNC_AT_FULL_REPLICATION} if factor >= MAX_REPLICATION else {})


class ClusterUnreachable(MuseError):
    """The cluster a command was pointed at did not answer within the connect timeout."""


def check_reachable(bootstrap: str, source: str, hint: str) -> None:
    """One metadata request, bounded by the connect timeout: a wrong address or a stopped broker is
    one clear error naming the address and where it came from (``source``), instead of every later
    request's own 30 s timeout and a wall of librdkafka lines; ``hint`` says what to check."""
    settings = client_settings()
    admin = AdminClient(admin_config(bootstrap))
    try:
        admin.list_topics(timeout=settings.connect_timeout_s)
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        security = (
            f"; that the security settings in {settings.security_file} match its listener" if settings.security_file else ""
        )
        raise ClusterUnreachable(
            f"cannot reach Kafka at {bootstrap} ({source}) within {settings.connect_timeout_s:g} s: {reason}. "
            f"Check {hint}{security}; on a slow network allow more time with --connect-timeout SECONDS "
            f"or {CONNECT_TIMEOUT_ENV}."
        ) from None
    finally:
        admin.poll(0)  # hand librdkafka's queued log lines to logging (visible with --log-level debug)


class TopicAdmin:
    """Idempotent topic creation whose result is read back and checked."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient(admin_config(bootstrap))

    def brokers(self) -> int:
        """How many brokers the cluster has now."""
        return len(self._admin.list_topics(timeout=ADMIN_TIMEOUT_S).brokers)

    def replication_factors(self) -> dict[str, int]:
        """Topic name -> replicas of its first partition."""
        metadata = self._admin.list_topics(timeout=ADMIN_TIMEOUT_S)
        return {
            name: len(topic.partitions[0].replicas) if topic.partitions else 0
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def existing_topics(self) -> dict[str, int]:
        """Topic name -> partition count."""
        metadata = self._admin.list_topics(timeout=ADMIN_TIMEOUT_S)
        return {name: len(topic.partitions) for name, topic in metadata.topics.items() if topic.error is None}

    def ensure(self, specs: Iterable[TopicSpec]) -> list[str]:
        """Create what is missing, check what exists; return the names created."""
        specs = list(specs)
        existing = self.existing_topics()
        missing = [spec for spec in specs if spec.name not in existing]
        created: list[str] = []
        replication, durability = replication_for(self.brokers()) if missing else (1, {})
        for start in range(0, len(missing), ADMIN_REQUEST_TOPICS):
            chunk = missing[start : start + ADMIN_REQUEST_TOPICS]
            futures = self._admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=replication,
                        config={**durability, **s.defaults, **s.configs},
                    )
                    for s in chunk
                ],
                operation_timeout=ADMIN_TIMEOUT_S,
            )
            for name, future in futures.items():
                try:
                    future.result()
                    created.append(name)
                except KafkaException as error:
                    if error.args[0].name() == "TOPIC_AUTHORIZATION_FAILED":
                        raise TopicAccessDenied(
                            f"topic {name!r} on {self.bootstrap} is missing or not visible to this login, which may "
                            "not create it: create a namespace's and tenants' topics as the admin (`muse tenants add`), "
                            "or check the client config (MUSE_CLIENT_CONFIG / --client-config)"
                        ) from None
                    if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent creator won
                        raise TopicError(f"creating topic {name!r} on {self.bootstrap} failed: {error}") from error
        if missing:
            existing = self._await_listing([spec.name for spec in missing], present=True)
            self._await_served(missing)
        self.check(specs, existing)
        return created

    def _await_listing(self, names: list[str], *, present: bool) -> dict[str, int]:
        """Creation and deletion are acknowledged before every broker's metadata shows them (a listing
        right after a deletion could still show the topics); wait for that and return the listing
        that shows it."""
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while True:
            existing = self.existing_topics()
            pending = [name for name in names if (name in existing) != present]
            if not pending:
                return existing
            if time.monotonic() > deadline:
                done, state = ("created", "are not in") if present else ("deleted", "are still in")
                raise TopicError(
                    f"topics {pending} were {done} on {self.bootstrap} but {state} its metadata "
                    f"after {ADMIN_TIMEOUT_S:.0f} s; check the broker with `muse broker logs`."
                )
            time.sleep(0.1)

    def _await_served(self, specs: Sequence[TopicSpec]) -> None:
        """A new topic is in the metadata a moment before its partitions' leader serves them: an
        offsets request answers NOT_LEADER_FOR_PARTITION meanwhile (most of the time, right after
        creation, on the local broker). Wait until every new partition answers one, so a caller may
        read or write it at once. Any other answer ends the wait: it is for the use to report."""
        partitions = [TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)]
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while partitions:
            futures = self._admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=ADMIN_TIMEOUT_S)
            partitions = []
            for tp, future in futures.items():
                try:
                    future.result()
                except KafkaException as error:
                    if error.args[0].code() in _NOT_SERVED_YET:
                        partitions.append(tp)
            if partitions and time.monotonic() > deadline:
                names = sorted({tp.topic for tp in partitions})
                raise TopicError(
                    f"topics {names} were created on {self.bootstrap} but their leader does not serve them "
                    f"after {ADMIN_TIMEOUT_S:.0f} s; check the broker with `muse broker logs`."
                )
            if partitions:
                time.sleep(0.1)

    def check(self, specs: Iterable[TopicSpec], existing: Mapping[str, int] | None = None) -> None:
        """Every spec exists with at least its partitions and exactly its configs (``existing``: a
        listing just taken, to spare the broker another one of every topic)."""
        specs = list(specs)
        existing = self.existing_topics() if existing is None else existing
        for spec in specs:
            if spec.name not in existing:
                raise TopicError(f"topic {spec.name!r} does not exist on {self.bootstrap}; create it with `muse tenants add`.")
            if existing[spec.name] < spec.partitions:
                raise TopicError(
                    f"topic {spec.name!r} has {existing[spec.name]} partitions, fewer than the {spec.partitions} asked for; "
                    f"{grow_hint(spec.name, spec.partitions)}."
                )
        actual = self.topic_configs([spec.name for spec in specs if spec.configs])
        for spec in specs:
            for key, wanted in spec.configs.items():
                have = actual[spec.name].get(key)
                if have != wanted:
                    raise TopicError(
                        f"topic {spec.name!r} has {key}={have!r}, but muse-stream needs {key}={wanted!r}; "
                        f"fix it with kafka-configs --alter --entity-type topics --entity-name {spec.name} --add-config {key}={wanted}"
                    )

    def grow(self, topics: Mapping[str, int]) -> dict[str, int]:
        """Raise each topic to the given partition count (CreatePartitions); return the counts before.
        Kafka never removes partitions, so asking for fewer than a topic has is refused, and asking
        for as many is a no-op."""
        existing = self.existing_topics()
        absent = sorted(set(topics) - set(existing))
        if absent:
            raise TopicError(f"topics {absent} do not exist on {self.bootstrap}; create them with `muse tenants add`.")
        for name, partitions in topics.items():
            if partitions < existing[name]:
                raise TopicError(
                    f"topic {name!r} has {existing[name]} partitions; it cannot shrink to {partitions}: "
                    "Kafka only adds partitions. Ask for at least its current count"
                )
        wanted = [NewPartitions(name, n) for name, n in topics.items() if n > existing[name]]
        if wanted:
            futures = self._admin.create_partitions(wanted, operation_timeout=ADMIN_TIMEOUT_S)
            for name, future in futures.items():
                try:
                    future.result()
                except KafkaException as error:
                    raise TopicError(
                        f"adding partitions to topic {name!r} on {self.bootstrap} failed: {error.args[0].str()}"
                    ) from error
            self._await_partitions({p.topic: p.new_total_count for p in wanted})
        return {name: existing[name] for name in topics}

    def _await_partitions(self, wanted: Mapping[str, int]) -> None:
        """New partitions are acknowledged before the metadata shows them; wait for that."""
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while True:
            existing = self.existing_topics()
            short = {name: existing.get(name, 0) for name, n in wanted.items() if existing.get(name, 0) < n}
            if not short:
                return
            if time.monotonic() > deadline:
                raise TopicError(
                    f"partitions were added to {sorted(short)} on {self.bootstrap} but its metadata still shows "
                    f"{short} after {ADMIN_TIMEOUT_S:.0f} s; check the broker with `muse broker logs`."
                )
            time.sleep(0.1)

    def topic_configs(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
        if not resources:
            return {}
        futures = self._admin.describe_configs(resources, request_timeout=ADMIN_TIMEOUT_S)
        return {
            resource.name: {key: entry.value for key, entry in future.result().items()} for resource, future in futures.items()
        }

    def set_configs(self, changes: Mapping[str, Mapping[str, str]]) -> None:
        """Set the given configs of each topic (IncrementalAlterConfigs: the others stay as they are)."""
        resources = [
            ConfigResource(
                ConfigResource.Type.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET) for key, value in configs.items()
                ],
            )
            for name, configs in changes.items()
            if configs
        ]
        if not resources:
            return
        for resource, future in self._admin.incremental_alter_configs(resources, request_timeout=ADMIN_TIMEOUT_S).items():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].name() == "TOPIC_AUTHORIZATION_FAILED":
                    raise TopicAccessDenied(
                        f"this login may not change the configs of topic {resource.name!r} on {self.bootstrap}; "
                        "the admin may (check MUSE_CLIENT_CONFIG / --client-config)"
                    ) from None
                raise TopicError(
                    f"changing the configs of topic {resource.name!r} on {self.bootstrap} failed: {error.args[0].str()}; "
                    "check that this login may alter topic configs (the admin may)"
                ) from error

    def delete(self, names: Iterable[str]) -> None:
        """Delete the topics; return once the broker's metadata no longer lists them."""
        names = list(names)
        if not names:
            return
        for start in range(0, len(names), ADMIN_REQUEST_TOPICS):
            chunk = names[start : start + ADMIN_REQUEST_TOPICS]
            for future in self._admin.delete_topics(chunk, operation_timeout=ADMIN_TIMEOUT_S).values():
                future.result()
        self._await_listing(names, present=False)


def tenants_on_broker(admin: TopicAdmin, names: TopicNames) -> dict[str, int]:
    """Tenant -> input partitions, read from the topics that exist."""
    existing = admin.existing_topics()
    return {tenant: existing[names.input_topic(tenant)] for tenant in names.tenants_in(existing)}


def tenant_retention(admin: TopicAdmin, names: TopicNames, tenants: Iterable[str]) -> dict[str, str]:
    """Tenant -> its input topic's retention, e.g. ``7d``, with the labels topic's beside it where
    that differs (``7d (labels 30d)``): how far back a replay can go."""
    tenants = list(tenants)
    existing = admin.existing_topics()
    topics = [names.input_topic(t) for t in tenants] + [
        names.labels_topic(t) for t in tenants if names.labels_topic(t) in existing
    ]
    configs = admin.topic_configs(topics)
    shown = {}
    for tenant in tenants:
        kept = describe_retention(configs[names.input_topic(tenant)].get("retention.ms"))
        labels = configs.get(names.labels_topic(tenant))
        if labels is not None and describe_retention(labels.get("retention.ms")) != kept:
            kept += f" (labels {describe_retention(labels.get('retention.ms'))})"
        shown[tenant] = kept
    return shown


def set_tenant_retention(admin: TopicAdmin, names: TopicNames, tenant: str, retention_ms: int) -> dict[str, str]:
    """Give a tenant's input and labels topics (those that exist) ``retention_ms``; returns each
    topic's retention before, as :func:`describe_retention` shows it."""
    existing = admin.existing_topics()
    topics = [spec.name for spec in names.tenant_topic_specs(tenant, kinds=RETAINED_KINDS) if spec.name in existing]
    if names.input_topic(tenant) not in topics:
        raise TopicError(
            f"tenant {tenant!r} has no input topic {names.input_topic(tenant)} on {admin.bootstrap}; "
            f"add it with `muse tenants add {tenant}`"
        )
    before = admin.topic_configs(topics)
    admin.set_configs({topic: {"retention.ms": str(retention_ms)} for topic in topics})
    return {topic: describe_retention(before[topic].get("retention.ms")) for topic in topics}


def ensure_tenant_topics(
    admin: TopicAdmin,
    names: TopicNames,
    tenants: Sequence[str],
    partitions: int = 1,
    *,
    kinds: Iterable[str] = TENANT_TOPIC_KINDS,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> list[tuple[TopicSpec, bool]]:
    """Create (idempotently) a namespace's internal topics and each tenant's topics of ``kinds``
    (all of them unless told; new input and labels topics keep ``retention_ms``); returns each spec
    ensured, internal ones first, with whether this call created it."""
    specs = names.internal_topic_specs()
    kinds = tuple(kinds)
    for tenant in tenants:
        specs += names.tenant_topic_specs(tenant, partitions, kinds=kinds, retention_ms=retention_ms)
    created = set(admin.ensure(specs))
    return [(spec, spec.name in created) for spec in specs]


def delete_namespace(admin: TopicAdmin, names: TopicNames, *extra_prefixes: str) -> int:
    """Delete every topic of a namespace (and of the given extra prefixes); returns how many."""
    prefixes = (f"{names.namespace}.", *extra_prefixes)
    doomed = [topic for topic in admin.existing_topics() if topic.startswith(prefixes)]
    admin.delete(doomed)
    return len(doomed)
