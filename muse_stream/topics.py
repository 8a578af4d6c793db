"""Topic names and topic administration.

Naming: every topic of one tenant starts with ``<namespace>.tenant.<tenant>.`` and tenant names
hold no dot, so no tenant's prefix is a prefix of another's topics: a prefixed ACL per tenant
(``--resource-pattern-type prefixed``) isolates tenants. Internal topics live under
``<namespace>.internal.``, which no tenant is granted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from muse_stream.broker.clients import DEAD_LETTER_MAX_BYTES, INPUT_RECORD_MAX_BYTES, admin_config
from muse_stream.errors import MuseError

DEFAULT_NAMESPACE = "muse"
TENANT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TENANT_TOPIC_KINDS = ("input", "output", "dlq")
ADMIN_TIMEOUT_S = 30.0
# Topics per CreateTopics/DeleteTopics request: a single request for 1,500 topics (500 tenants)
# can outlast the admin timeout on a small broker.
ADMIN_REQUEST_TOPICS = 300


class TopicError(MuseError):
    """A topic is missing, misnamed or configured differently from what muse-stream needs."""


def validate_tenant_name(tenant: str) -> str:
    if not TENANT_NAME_PATTERN.match(tenant):
        raise TopicError(
            f"tenant name {tenant!r} is invalid: use 1-48 characters of lowercase letters, digits, "
            "'-' and '_', starting with a letter or digit (no dots: a dot would break per-tenant ACL prefixes)."
        )
    return tenant


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicNames:
    """All topic names of one deployment; tests use a fresh namespace so they never share records."""

    namespace: str = DEFAULT_NAMESPACE
    # The data path derives a name per event or per result (topic -> tenant, tenant -> output and
    # DLQ topic); each is validated by regex once and then looked up. Only valid names are cached,
    # so these grow with the tenants that exist.
    _topics: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _tenants: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not NAMESPACE_PATTERN.match(self.namespace):
            raise TopicError(f"namespace {self.namespace!r} is invalid: use 1-64 letters, digits, '-' or '_'.")

    def tenant_prefix(self, tenant: str) -> str:
        return f"{self.namespace}.tenant.{validate_tenant_name(tenant)}."

    def tenant_topic(self, tenant: str, kind: str) -> str:
        topic = self._topics.get((tenant, kind))
        if topic is None:
            if kind not in TENANT_TOPIC_KINDS:
                raise ValueError(f"unknown tenant topic kind {kind!r}; expected one of {TENANT_TOPIC_KINDS}")
            topic = self._topics[(tenant, kind)] = self.tenant_prefix(tenant) + kind
        return topic

    def input_topic(self, tenant: str) -> str:
        return self.tenant_topic(tenant, "input")

    def output_topic(self, tenant: str) -> str:
        return self.tenant_topic(tenant, "output")

    def dlq_topic(self, tenant: str) -> str:
        return self.tenant_topic(tenant, "dlq")

    @property
    def input_topic_regex(self) -> str:
        """A librdkafka subscription pattern matching every tenant's input topic, present and future."""
        return "^" + re.escape(f"{self.namespace}.tenant.") + r"[a-z0-9][a-z0-9_-]*\.input$"

    def tenant_of_topic(self, topic: str) -> str:
        """The tenant owning a topic; the tenant always comes from the topic, never from a payload."""
        tenant = self._tenants.get(topic)
        if tenant is None:
            prefix = f"{self.namespace}.tenant."
            if not topic.startswith(prefix):
                raise TopicError(f"topic {topic!r} is not a tenant topic of namespace {self.namespace!r}")
            tenant, _, kind = topic[len(prefix):].partition(".")
            if kind not in TENANT_TOPIC_KINDS:
                raise TopicError(f"topic {topic!r} is not a tenant topic of namespace {self.namespace!r}")
            tenant = self._tenants[topic] = validate_tenant_name(tenant)
        return tenant

    @property
    def config_topic(self) -> str:
        return f"{self.namespace}.internal.config"

    @property
    def shadow_topic(self) -> str:
        return f"{self.namespace}.internal.shadow"

    @property
    def models_topic(self) -> str:
        return f"{self.namespace}.internal.models"

    @property
    def config_history_topic(self) -> str:
        return f"{self.namespace}.internal.config-history"

    # -- what each topic must look like ------------------------------------------------------

    def tenant_topic_specs(self, tenant: str, partitions: int = 1) -> list[TopicSpec]:
        if partitions < 1:
            raise TopicError(f"tenant {tenant!r}: partitions must be at least 1, got {partitions}")
        return [
            TopicSpec(self.input_topic(tenant), partitions, {"max.message.bytes": str(INPUT_RECORD_MAX_BYTES)}),
            TopicSpec(self.output_topic(tenant), partitions),
            # A DLQ is evidence: keep it for a month, whatever the broker's default retention, and
            # take any input record whole (its bytes in base64 plus the reason).
            TopicSpec(self.dlq_topic(tenant), 1, {"retention.ms": str(30 * 24 * 3600 * 1000),
                                                  "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)}),
        ]

    def internal_topic_specs(self, shadow_partitions: int = 4) -> list[TopicSpec]:
        return [
            # One record per key, tombstones delete: the whole live config is the compacted log.
            TopicSpec(self.config_topic, 1, {"cleanup.policy": "compact"}),
            TopicSpec(self.shadow_topic, shadow_partitions),
            # Model artifacts keyed by sha256; large records allowed.
            TopicSpec(self.models_topic, 1, {"cleanup.policy": "compact", "max.message.bytes": str(64 * 1024 * 1024)}),
            # Every config change set, one record per version, kept forever: compaction of the
            # config topic may drop old versions, this log never does.
            TopicSpec(self.config_history_topic, 1, {
                "cleanup.policy": "delete", "retention.ms": "-1", "max.message.bytes": str(16 * 1024 * 1024),
            }),
        ]


class TopicAdmin:
    """Idempotent topic creation whose result is read back and checked."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._admin = AdminClient(admin_config(bootstrap))

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
        for start in range(0, len(missing), ADMIN_REQUEST_TOPICS):
            chunk = missing[start:start + ADMIN_REQUEST_TOPICS]
            futures = self._admin.create_topics(
                [NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=dict(s.configs))
                 for s in chunk],
                operation_timeout=ADMIN_TIMEOUT_S,
            )
            for name, future in futures.items():
                try:
                    future.result()
                    created.append(name)
                except KafkaException as error:
                    if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent creator won
                        raise TopicError(f"creating topic {name!r} on {self.bootstrap} failed: {error}") from error
        if missing:
            existing = self._await_visible([spec.name for spec in missing])
        self.check(specs, existing)
        return created

    def _await_visible(self, names: list[str]) -> dict[str, int]:
        """Creation is acknowledged before every broker's metadata shows the topic; wait for that
        and return the listing that shows them."""
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while True:
            existing = self.existing_topics()
            if all(name in existing for name in names):
                return existing
            if time.monotonic() > deadline:
                missing = [name for name in names if name not in existing]
                raise TopicError(f"topics {missing} were created on {self.bootstrap} but are not in its metadata "
                                 f"after {ADMIN_TIMEOUT_S:.0f} s; check the broker with `muse broker logs`.")
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
                    "add partitions with kafka-topics --alter, or ask for fewer."
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

    def topic_configs(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
        if not resources:
            return {}
        futures = self._admin.describe_configs(resources, request_timeout=ADMIN_TIMEOUT_S)
        return {
            resource.name: {key: entry.value for key, entry in future.result().items()}
            for resource, future in futures.items()
        }

    def delete(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        for start in range(0, len(names), ADMIN_REQUEST_TOPICS):
            chunk = names[start:start + ADMIN_REQUEST_TOPICS]
            for future in self._admin.delete_topics(chunk, operation_timeout=ADMIN_TIMEOUT_S).values():
                future.result()


def tenants_on_broker(admin: TopicAdmin, names: TopicNames) -> dict[str, int]:
    """Tenant -> input partitions, read from the topics that exist."""
    tenants: dict[str, int] = {}
    for topic, partitions in admin.existing_topics().items():
        if re.match(names.input_topic_regex, topic):
            tenants[names.tenant_of_topic(topic)] = partitions
    return dict(sorted(tenants.items()))
