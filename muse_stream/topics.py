"""Topic names, group ids and what each topic must look like: pure, no Kafka client in here.

Naming: every topic of one tenant starts with ``<namespace>.tenant.<tenant>.`` and tenant names
hold no dot, so no tenant's prefix is a prefix of another's topics: a prefixed ACL per tenant
(``--resource-pattern-type prefixed``) isolates tenants. Internal topics live under
``<namespace>.internal.``, which no tenant is granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from muse_stream.durations import describe_ms, duration_ms
from muse_stream.errors import MuseError

DEFAULT_NAMESPACE = "muse"
DEFAULT_TENANT_PARTITIONS = 1  # input/output partitions of a tenant created without a count
TENANT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the scoring workers read and write; a worker ensures these topics of every tenant it is given.
DATA_PATH_KINDS = ("input", "output", "dlq")
# Every kind of tenant topic: the data path plus the analysts' labels (read by replays only, so a
# deployment whose tenants predate labels keeps working without them).
TENANT_TOPIC_KINDS = (*DATA_PATH_KINDS, "labels")
# Input topics refuse larger records at the door. A dead letter carries the original bytes in
# base64 (4/3 of them) plus its envelope, so DLQ topics and producers allow more than that.
INPUT_RECORD_MAX_BYTES = 1024 * 1024
DEAD_LETTER_MAX_BYTES = 4 * 1024 * 1024
# The models topic allows records this large; a model artifact travels as one record.
ARTIFACT_MAX_BYTES = 64 * 1024 * 1024
# How long input and labels topics keep records unless a tenant's are changed: how far back a
# replay (and so a backtest) can go.
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
# The tenant topics whose retention is the tenant's (`muse tenants alter --retention`, a config's
# `retention`): what a replay reads.
RETAINED_KINDS = ("input", "labels")


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
    configs: Mapping[str, str] = field(default_factory=dict)  # set on creation and checked exactly
    # Set on creation only, never checked: an operator may change them per tenant (retention) and
    # the workers' checks of existing topics, made before this default existed, must not fail.
    defaults: Mapping[str, str] = field(default_factory=dict)


def parse_retention(text: str) -> int:
    """``14d`` -> its milliseconds (units ``ms s m h d``); ``forever`` -> -1 (Kafka's never delete).
    The inverse of :func:`describe_retention`."""
    if text.strip().lower() == "forever":
        return -1
    ms = duration_ms(text, default_unit=None)
    if ms is None or ms != int(ms):
        raise TopicError(
            f"retention {text!r} is not a duration: give a positive number with a unit, "
            "ms, s, m, h or d, in whole milliseconds (e.g. 14d, 36h, 1.5d), or 'forever'"
        )
    return int(ms)


def describe_retention(retention_ms: str | None) -> str:
    """``604800000`` -> ``7d``; ``-1`` -> ``forever``; None (unknown) -> ``?``."""
    if retention_ms is None:
        return "?"
    ms = int(retention_ms)
    return "forever" if ms < 0 else describe_ms(ms)


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

    def labels_topic(self, tenant: str) -> str:
        return self.tenant_topic(tenant, "labels")

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
            tenant, _, kind = topic[len(prefix) :].partition(".")
            if kind not in TENANT_TOPIC_KINDS:
                raise TopicError(f"topic {topic!r} is not a tenant topic of namespace {self.namespace!r}")
            tenant = self._tenants[topic] = validate_tenant_name(tenant)
        return tenant

    def tenants_in(self, topics: Iterable[str], kind: str = "input") -> list[str]:
        """The tenants that own a ``kind`` topic among ``topics`` (say, a broker's listing), sorted."""
        tenants = set()
        for topic in topics:
            try:
                tenant = self.tenant_of_topic(topic)
            except TopicError:
                continue
            if topic == self.tenant_topic(tenant, kind):
                tenants.add(tenant)
        return sorted(tenants)

    @property
    def worker_group(self) -> str:
        """The consumer group of every scoring worker of this namespace."""
        return f"{self.namespace}.workers"

    @property
    def monitor_app_id(self) -> str:
        """The Faust app id (and so consumer group and changelog prefix) of the namespace's monitor."""
        return f"{self.namespace}.internal.monitor"

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

    def tenant_topic_specs(
        self,
        tenant: str,
        partitions: int = DEFAULT_TENANT_PARTITIONS,
        *,
        kinds: Iterable[str] = DATA_PATH_KINDS,
        retention_ms: int = DEFAULT_RETENTION_MS,
    ) -> list[TopicSpec]:
        """The specs of a tenant's topics of ``kinds``: by default the data path's, which is what a
        worker ensures; ``muse tenants add`` asks for every kind (``TENANT_TOPIC_KINDS``).
        ``retention_ms`` is what new input and labels topics keep (:data:`RETAINED_KINDS`)."""
        if partitions < 1:
            raise TopicError(f"tenant {tenant!r}: partitions must be at least 1, got {partitions}")
        kinds = tuple(kinds)
        unknown = sorted(set(kinds) - set(TENANT_TOPIC_KINDS))
        if unknown:
            raise ValueError(f"unknown tenant topic kinds {unknown}; expected some of {TENANT_TOPIC_KINDS}")
        specs = [
            # Input and labels are what a replay reads: kept DEFAULT_RETENTION_MS unless changed per tenant.
            TopicSpec(
                self.input_topic(tenant),
                partitions,
                {"max.message.bytes": str(INPUT_RECORD_MAX_BYTES)},
                defaults={"retention.ms": str(retention_ms)},
            ),
            TopicSpec(self.output_topic(tenant), partitions),
            # A DLQ is evidence: keep it for a month, whatever the broker's default retention, and
            # take any input record whole (its bytes in base64 plus the reason).
            TopicSpec(
                self.dlq_topic(tenant),
                1,
                {"retention.ms": str(30 * 24 * 3600 * 1000), "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
            ),
            # Labels keyed by event id (an event's relabelling lands on the same partition, after
            # the first), partitioned and retained like the input: a label outliving its event is
            # useless to a replay, and one expiring before it would drop it from backtests.
            TopicSpec(self.labels_topic(tenant), partitions, defaults={"retention.ms": str(retention_ms)}),
        ]
        return [spec for spec in specs if spec.name.rpartition(".")[2] in kinds]

    def worker_internal_topic_specs(self) -> list[TopicSpec]:
        """The internal topics a worker reads or writes (config, shadow, models), which it ensures
        at start. Not the config history: on a secured cluster a worker may not even see it."""
        return [spec for spec in self.internal_topic_specs() if spec.name != self.config_history_topic]

    def internal_topic_specs(self, shadow_partitions: int = 4) -> list[TopicSpec]:
        return [
            # One record per key, tombstones delete: the whole live config is the compacted log.
            TopicSpec(self.config_topic, 1, {"cleanup.policy": "compact"}),
            TopicSpec(self.shadow_topic, shadow_partitions),
            # Model artifacts keyed by sha256; large records allowed.
            TopicSpec(self.models_topic, 1, {"cleanup.policy": "compact", "max.message.bytes": str(ARTIFACT_MAX_BYTES)}),
            # Every config change set, one record per version, kept forever: compaction of the
            # config topic may drop old versions, this log never does.
            TopicSpec(
                self.config_history_topic,
                1,
                {
                    "cleanup.policy": "delete",
                    "retention.ms": "-1",
                    "max.message.bytes": str(16 * 1024 * 1024),
                },
            ),
        ]
