"""Atomic publication of a config change: the whole diff in one Kafka transaction.

Order of a publication:

1. every model artifact the desired config names is uploaded to the models topic (idempotent,
   keyed by sha256) *before* the config transaction, so no reader ever sees a predictor whose model
   is not there yet;
2. ``init_transactions()`` with the namespace's fixed transactional id ``muse-config.<ns>``: a
   second operator publishing at the same time fences the first (whose commit then fails), and any
   transaction a crashed publisher left open is aborted;
3. the live config is re-read (read_committed) *after* that, and the new version is one past both
   the live marker and the newest history record: if the marker was ever lost (a tombstone written
   on ``meta/version`` by hand, then compacted away), versions still never repeat, and publishing
   the same config again restores the marker;
4. one transaction: the upserts and tombstones of the diff, then the ``meta/version`` marker, then
   the whole change set as one record on the history topic (delete policy, kept forever, so no
   version is ever lost to compaction of the config topic).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from confluent_kafka import KafkaException, Producer

from muse_stream.clients.admin import TopicAccessDenied, TopicAdmin
from muse_stream.clients.producing import call_retrying
from muse_stream.clients.reading import read_to_end
from muse_stream.clients.settings import transactional_producer_config
from muse_stream.config.artifact_topic import KafkaArtifactStore
from muse_stream.config.deployment import (
    MARKER_KEY,
    DeploymentConfig,
    VersionMarker,
    encode_value,
)
from muse_stream.config.history import Body, encode_history_record, operator_identity
from muse_stream.config.state import ConfigState, read_config_log
from muse_stream.errors import MuseError
from muse_stream.models.store import ArtifactError, sha256_hex
from muse_stream.topics import (
    DEFAULT_RETENTION_MS,
    DEFAULT_TENANT_PARTITIONS,
    RETAINED_KINDS,
    TENANT_TOPIC_KINDS,
    TopicNames,
    describe_retention,
)

COMMIT_ATTEMPTS = 5
VISIBLE_WAIT_S = 10.0
logger = logging.getLogger("muse_stream.config")


class PublishError(MuseError):
    pass


@dataclass(frozen=True)
class ConfigDiff:
    """What must change on the config topic to make ``desired`` live."""

    live_version: int
    upserts: dict[str, bytes] = field(default_factory=dict)  # key -> canonical body
    deletes: tuple[str, ...] = ()
    added: tuple[str, ...] = ()  # the upserts that are new keys

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.deletes

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(sorted([*self.upserts, *self.deletes]))

    def describe(self) -> list[str]:
        """``+ key`` added, ``~ key`` changed, ``- key`` deleted, in key order."""
        marks = {**{k: "~" for k in self.upserts}, **{k: "+" for k in self.added}, **{k: "-" for k in self.deletes}}
        return [f"{marks[key]} {key}" for key in sorted(marks)]


def diff_configs(live: ConfigState, desired: DeploymentConfig) -> ConfigDiff:
    have, want = live.bodies(), desired.bodies()
    upserts = {key: body for key, body in want.items() if have.get(key) != body}
    # Delete what the desired config lacks, including keys whose records could not be decoded.
    deletes = tuple(sorted((live.present | set(have)) - set(want)))
    return ConfigDiff(live.version, upserts, deletes, tuple(sorted(set(upserts) - set(have))))


@dataclass(frozen=True)
class PublishResult:
    version: int  # the live version after publishing (unchanged when there was nothing to do)
    diff: ConfigDiff
    uploaded: tuple[str, ...]  # sha256 of artifacts uploaded
    created_topics: tuple[str, ...] = ()  # internal and declared tenants' topics that did not exist
    retention_set: tuple[str, ...] = ()  # "<topic> <before> -> <after>" for each retention the config changed


class ConfigPublisher:
    def __init__(self, bootstrap: str, names: TopicNames, *, artifact_store: KafkaArtifactStore | None = None) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.transactional_id = f"muse-config.{names.namespace}"
        self.artifacts = artifact_store or KafkaArtifactStore(bootstrap, names)

    def ensure_topics(self, desired: DeploymentConfig | None = None) -> list[str]:
        """The internal topics, and the topics of every tenant ``desired`` declares (existing ones are
        checked, never changed); returns the names created."""
        admin = TopicAdmin(self.bootstrap)
        created = admin.ensure(self.names.internal_topic_specs())
        tenant_specs = [
            spec
            for tenant in (desired.tenants if desired is not None else ())
            for spec in self.names.tenant_topic_specs(
                tenant.name,
                tenant.partitions or DEFAULT_TENANT_PARTITIONS,
                kinds=TENANT_TOPIC_KINDS,
                retention_ms=tenant.retention_ms or DEFAULT_RETENTION_MS,
            )
        ]
        try:
            created += admin.ensure(tenant_specs)
        except TopicAccessDenied:
            # A secured cluster: tenants' topics (and credentials) are the admin's, made by `muse
            # tenants add`; an operator's login can neither see nor create them, and need not.
            logger.warning(
                "this login may not check or create tenants' topics on %s; the admin creates them with "
                "`muse tenants add` (workers report any that are missing)",
                self.bootstrap,
            )
        return created

    def apply_retention(self, desired: DeploymentConfig) -> list[str]:
        """Give the input and labels topics of every tenant whose config declares a retention that
        retention, where they keep another; returns ``"<topic> <before> -> <after>"`` per change."""
        declared = {tenant.name: tenant.retention_ms for tenant in desired.tenants if tenant.retention_ms is not None}
        if not declared:
            return []
        admin = TopicAdmin(self.bootstrap)
        existing = admin.existing_topics()
        wanted = {
            spec.name: retention_ms
            for tenant, retention_ms in declared.items()
            for spec in self.names.tenant_topic_specs(tenant, kinds=RETAINED_KINDS)
            if spec.name in existing
        }
        try:
            before = admin.topic_configs(wanted)
            changed = {topic: ms for topic, ms in wanted.items() if before[topic].get("retention.ms") != str(ms)}
            admin.set_configs({topic: {"retention.ms": str(ms)} for topic, ms in changed.items()})
        except TopicAccessDenied:
            logger.warning(
                "this login may not change tenants' topic configs on %s; the admin sets retention with "
                "`muse tenants alter NAME --retention DURATION`",
                self.bootstrap,
            )
            return []
        return [
            f"{topic} {describe_retention(before[topic].get('retention.ms'))} -> {describe_retention(str(ms))}"
            for topic, ms in sorted(changed.items())
        ]

    def live(self) -> ConfigState:
        return read_config_log(self.bootstrap, self.names)

    def diff(self, desired: DeploymentConfig) -> ConfigDiff:
        return diff_configs(self.live(), desired)

    def next_version(self, diff: ConfigDiff) -> int | None:
        """The version publishing ``diff`` writes, one past both the live marker and the newest history
        record; None when there is nothing to write (no change, and the marker is where it should be)."""
        history_version = self.history_version()
        if diff.live_version < history_version:
            logger.warning(
                "the version marker on %s says %d but %s reached version %d: the marker was lost "
                "(a tombstone on %s, compacted away?); publishing version %d restores it",
                self.names.config_topic,
                diff.live_version,
                self.names.config_history_topic,
                history_version,
                MARKER_KEY,
                history_version + 1,
            )
        elif diff.empty:
            return None
        return max(diff.live_version, history_version) + 1

    def history_version(self) -> int:
        """The newest version on the history topic (0 when empty); records with other keys are skipped."""
        versions = [
            int(key)
            for message in read_to_end(self.bootstrap, self.names.config_history_topic)
            if (key := (message.key() or b"").decode("ascii", errors="replace")).isdigit()
        ]
        return max(versions, default=0)

    def wait_until_readable(self, version: int, timeout: float = VISIBLE_WAIT_S) -> None:
        """Return once read_committed readers see ``version`` on the config and history topics.

        ``commit_transaction`` returns when the commit is decided; the markers that make its records
        readable reach the partitions just after. Without this wait, a command run right after
        ``apply`` (``show``, ``history``, the next plan) could still read the version before."""
        deadline = time.monotonic() + timeout
        while self.live().version < version or self.history_version() < version:
            if time.monotonic() > deadline:
                logger.warning(
                    "version %d was committed but is not readable on %s after %.0f s", version, self.names.config_topic, timeout
                )
                return
            time.sleep(0.05)

    def upload(self, desired: DeploymentConfig, artifacts: Mapping[str, bytes]) -> tuple[str, ...]:
        """Put every artifact the config names on the models topic; refuse when one is missing."""
        uploaded = []
        present = self.artifacts.on_topic() if desired.models else frozenset()
        for meta in desired.models:
            if meta.sha256 in present:
                continue
            data = artifacts.get(meta.sha256)
            if data is None:
                raise ArtifactError(
                    f"model/{meta.sha256} ({meta.name}:{meta.version}) is neither on {self.artifacts.topic} "
                    "nor among the artifacts given; add its file to the config's [[models]]"
                )
            if sha256_hex(data) != meta.sha256:
                raise ArtifactError(
                    f"the artifact given for model/{meta.sha256} ({meta.name}:{meta.version}) hashes to "
                    f"{sha256_hex(data)}; refusing to upload it"
                )
            self.artifacts.put(data)
            uploaded.append(meta.sha256)
        return tuple(uploaded)

    def publish(
        self, desired: DeploymentConfig, artifacts: Mapping[str, bytes] | None = None, *, expect_version: int | None = None
    ) -> PublishResult:
        """Make ``desired`` live atomically; a no-op (same version) when nothing differs.

        ``expect_version``: the live version a plan was shown against; when another publication
        went live since, nothing is published (the plan shown is no longer what would happen)."""
        created = tuple(self.ensure_topics(desired))
        retention_set = tuple(self.apply_retention(desired))
        uploaded = self.upload(desired, artifacts or {})
        producer = Producer(transactional_producer_config(self.bootstrap, self.transactional_id))
        try:
            producer.init_transactions()
            diff = self.diff(desired)  # after init_transactions: no publication of ours is in flight now
            if expect_version is not None and diff.live_version != expect_version:
                raise PublishError(
                    f"{self.names.config_topic} moved from version {expect_version} to {diff.live_version} "
                    "while the plan was shown (another operator published); nothing was published: "
                    "look at the new plan and apply again"
                )
            version = self.next_version(diff)
            if version is None:
                return PublishResult(diff.live_version, diff, uploaded, created, retention_set)
            marker = VersionMarker(config_version=version, changed=diff.changed, applied_at=datetime.now(UTC))
            changes: dict[str, Body | None] = {}
            producer.begin_transaction()
            for key, body in sorted(diff.upserts.items()):
                value = encode_value(orjson.loads(body), version)
                producer.produce(self.names.config_topic, key=key.encode(), value=value)
                changes[key] = orjson.loads(body)
            for key in diff.deletes:
                producer.produce(self.names.config_topic, key=key.encode(), value=None)
                changes[key] = None
            producer.produce(self.names.config_topic, key=MARKER_KEY.encode(), value=encode_value(marker, version))
            producer.produce(
                self.names.config_history_topic,
                key=str(version).encode(),
                value=encode_history_record(version, marker.applied_at, operator_identity(), changes),
            )
            # A timeout may hide a commit that succeeded: retrying is how librdkafka tells the outcome.
            call_retrying(producer.commit_transaction, attempts=COMMIT_ATTEMPTS)
            self.wait_until_readable(version)
            return PublishResult(version, diff, uploaded, created, retention_set)
        except KafkaException as error:
            kafka_error = error.args[0]
            if kafka_error.txn_requires_abort():
                try:
                    producer.abort_transaction()
                except KafkaException:
                    pass  # the broker aborts it at the transaction timeout, or the next publisher's init does
            if kafka_error.fatal():
                hint = (
                    "another operator published to this namespace at the same time and fenced this publication; "
                    "run `muse config diff` and apply again"
                )
            elif kafka_error.txn_requires_abort():
                hint = "the transaction was aborted, nothing was published; retry"
            else:
                hint = "the outcome is unknown; run `muse config show` to see whether the version went live"
            raise PublishError(
                f"publishing config to {self.names.config_topic} on {self.bootstrap} failed: {kafka_error.str()}; {hint}"
            ) from error
        finally:
            producer.flush(5)
