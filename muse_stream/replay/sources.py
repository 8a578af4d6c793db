"""What a replay reads from Kafka: the configs (live log, history topic, models topic), the labels,
and the input partitions of a window. Every read is ``assign()``-based with a fresh, never-joined
group id (:func:`~muse_stream.clients.settings.log_reader_config`) and never commits, so a replay
cannot move, or even join, the workers' group; everything is read ``read_committed``."""

from __future__ import annotations

import operator
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.reading import READ_TIMEOUT_S, Record
from muse_stream.clients.settings import log_reader_config
from muse_stream.config.artifact_topic import KafkaArtifactStore
from muse_stream.config.deployment import ConfigError
from muse_stream.config.files import load_deployment_file
from muse_stream.config.history import HistoryError, config_at
from muse_stream.config.state import read_config_log, read_history
from muse_stream.errors import MuseError
from muse_stream.events import LabelRecord
from muse_stream.labels import latest_labels
from muse_stream.models.store import ArtifactError, check_sha256
from muse_stream.replay.configs import (
    ConfigChoice,
    ReplayConfigError,
    ResolvedConfig,
)
from muse_stream.replay.window import Window
from muse_stream.topics import TopicError, TopicNames

# (topic, partition) -> [start, stop) offsets
Ranges = dict[tuple[str, int], tuple[int, int]]
STALL_TIMEOUT_S = 60.0


class ReplayArtifactStore:
    """Model artifacts of candidate files from their files, everything else from the models topic."""

    def __init__(self, files: Mapping[str, Path], topic_store: KafkaArtifactStore) -> None:
        self.files = dict(files)
        self.topic_store = topic_store

    def get(self, sha256: str) -> bytes:
        path = self.files.get(check_sha256(sha256))
        return path.read_bytes() if path is not None else self.topic_store.get(sha256)

    def exists(self, sha256: str) -> bool:
        return sha256 in self.files or self.topic_store.exists(sha256)

    def put(self, data: bytes) -> str:
        raise ArtifactError("a replay never uploads model artifacts")


def resolve_tenants(admin: TopicAdmin, names: TopicNames, tenants: Iterable[str] | None) -> list[str]:
    """The tenants asked for (each must have an input topic), or every tenant on the broker (None)."""
    existing = admin.existing_topics()
    if tenants is None:
        found = names.tenants_in(existing)
        if not found:
            raise TopicError(f"namespace {names.namespace!r} has no tenants on {admin.bootstrap}; check --namespace")
        return found
    chosen = sorted(set(tenants))
    for tenant in chosen:
        if names.input_topic(tenant) not in existing:
            raise TopicError(
                f"unknown tenant {tenant!r}: there is no input topic {names.input_topic(tenant)} on "
                f"{admin.bootstrap}; `muse tenants list --namespace {names.namespace}` shows the tenants"
            )
    return chosen


def resolve_config(bootstrap: str, names: TopicNames, choice: ConfigChoice) -> ResolvedConfig:
    if choice.kind == "file":
        loaded = load_deployment_file(choice.path)  # type: ignore[arg-type]
        return ResolvedConfig(choice.tag, None, loaded.config, dict(loaded.artifacts))
    existing = TopicAdmin(bootstrap).existing_topics()
    if choice.kind == "live":
        if names.config_topic not in existing:
            raise ReplayConfigError(
                f"there is no live config: {names.config_topic} does not exist on {bootstrap}; "
                "check --namespace, or apply one with `muse config apply`"
            )
        state = read_config_log(bootstrap, names)
        if state.version == 0:
            raise ReplayConfigError(f"there is no live config on {names.config_topic}; apply one with `muse config apply`")
        return ResolvedConfig(choice.tag, state.version, state.deployment())
    topic = names.config_history_topic
    if topic not in existing:
        raise ReplayConfigError(f"config version {choice.version} is not in history: {topic} does not exist on {bootstrap}")
    assert choice.version is not None
    try:
        config = config_at(read_history(bootstrap, names), choice.version)
    except (HistoryError, ConfigError) as error:
        raise ReplayConfigError(
            f"config version {choice.version} is not in the history topic {topic} as a whole "
            f"config: {error}; give a version that `muse config history` lists"
        ) from None
    return ResolvedConfig(choice.tag, choice.version, config)


class _Polled(Record, Protocol):
    """A message consumed from assigned partitions: a record, or an event of its partition (e.g. its
    end), which names the partition too; so topic() and partition() are never None here."""

    def error(self) -> KafkaError | None: ...


def _polled(messages: list[Message]) -> list[_Polled]:
    """A consumed batch as :class:`_Polled` messages, one cast per batch."""
    return cast("list[_Polled]", messages)


def _reader(bootstrap: str) -> Consumer:
    # Prefetch bounded at 16 MB (librdkafka's default lets it queue 64 MB ahead of a replay that
    # scores slower than it reads): a replay's memory stays flat whatever the window's size.
    return Consumer(
        log_reader_config(
            bootstrap, **{"fetch.wait.max.ms": 100, "queued.max.messages.kbytes": 16_384, "fetch.max.bytes": 8 << 20}
        )
    )


def window_ranges(bootstrap: str, topics: Mapping[str, int], window: Window) -> Ranges:
    """``[start, stop)`` of every partition of ``topics`` (name -> partition count) in ``window``."""
    consumer = _reader(bootstrap)
    try:
        ranges: Ranges = {}
        truncated: Ranges = {}  # partitions that lost their first records: (low, high)
        for topic, count in topics.items():
            partitions = [TopicPartition(topic, p) for p in range(count)]
            at_from: list[int | None] = [None] * count
            at_to = at_from
            if window.from_ms is not None:
                at_from = [
                    tp.offset
                    for tp in consumer.offsets_for_times(
                        [TopicPartition(topic, p, window.from_ms) for p in range(count)], timeout=READ_TIMEOUT_S
                    )
                ]
            if window.to_ms is not None:
                at_to = [
                    tp.offset
                    for tp in consumer.offsets_for_times(
                        [TopicPartition(topic, p, window.to_ms) for p in range(count)], timeout=READ_TIMEOUT_S
                    )
                ]
            for tp, start_at, stop_at in zip(partitions, at_from, at_to, strict=True):
                low, high = consumer.get_watermark_offsets(tp, timeout=READ_TIMEOUT_S)
                ranges[(topic, tp.partition)] = window.offsets(low, high, start_at, stop_at)
                if low > 0 and window.from_ms is not None:
                    truncated[(topic, tp.partition)] = (low, high)
                else:
                    window.check_retained(topic, tp.partition, low, None)
        oldest = _first_timestamps(consumer, truncated)
        for (topic, partition), (low, _) in truncated.items():
            window.check_retained(topic, partition, low, oldest.get((topic, partition)))
        return ranges
    except KafkaException as error:
        raise MuseError(
            f"looking up offsets of {', '.join(topics)} on {bootstrap} failed: {error.args[0].str()}; "
            "check the broker with `muse broker status`"
        ) from error
    finally:
        consumer.close()


def _first_timestamps(consumer: Consumer, partitions: Ranges) -> dict[tuple[str, int], int]:
    """The timestamp of the first readable record at or after each partition's ``low`` offset
    (partitions with none left are missing from the result)."""
    pending = {key: high for key, (low, high) in partitions.items() if low < high}
    if not pending:
        return {}
    consumer.assign([TopicPartition(topic, partition, partitions[(topic, partition)][0]) for topic, partition in pending])
    found: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while pending and time.monotonic() < deadline:
            for message in _polled(consumer.consume(len(pending) * 10, timeout=0.5)):
                key = (message.topic(), message.partition())
                if key not in pending:
                    continue
                error = message.error()
                if error is None:
                    found[key] = message.timestamp()[1]
                    pending.pop(key)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.pop(key)
                if key not in pending:
                    consumer.pause([TopicPartition(*key)])
    finally:
        consumer.unassign()
    return found


def read_ranges(bootstrap: str, ranges: Ranges, *, batch_size: int = 5000) -> Iterator[list[Record]]:
    """The committed records of every ``[start, stop)`` range, in batches of up to ``batch_size``
    (records of one partition in offset order). Ends when every range is read or its partition's
    end (for read_committed, the last stable offset) is reached."""
    pending = {key: stop for key, (start, stop) in ranges.items() if start < stop}
    if not pending:
        return
    consumer = _reader(bootstrap)
    consumer.assign([TopicPartition(topic, partition, ranges[(topic, partition)][0]) for topic, partition in pending])
    last_progress = time.monotonic()
    try:
        while pending:
            batch: list[Record] = []
            finished: list[tuple[str, int]] = []
            consumed = consumer.consume(batch_size, timeout=0.5)
            if _inside(consumed, pending):
                yield cast("list[Record]", consumed)
                last_progress = time.monotonic()
                continue
            for message in _polled(consumed):
                key = (message.topic(), message.partition())
                stop = pending.get(key)
                if stop is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        finished.append(key)
                    elif error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise MuseError(f"cannot read {key[0]} partition {key[1]} on {bootstrap}: {error.str()}")
                    continue
                offset = message.offset()
                if offset < stop:
                    batch.append(message)
                if offset >= stop - 1:
                    finished.append(key)
            for key in finished:
                if pending.pop(key, None) is not None:
                    consumer.pause([TopicPartition(*key)])
            if batch or finished:
                last_progress = time.monotonic()
                if batch:
                    yield batch
            elif time.monotonic() - last_progress > STALL_TIMEOUT_S:
                stuck = ", ".join(f"{t}[{p}] before offset {s}" for (t, p), s in sorted(pending.items()))
                raise MuseError(
                    f"reading {stuck} on {bootstrap} made no progress for {STALL_TIMEOUT_S:.0f} s; "
                    "check the broker, and that no producer holds a transaction open"
                )
    finally:
        consumer.close()


def _inside(messages: list[Message], pending: Mapping[tuple[str, int], int]) -> bool:
    """Whether a consumed batch is all records (no partition events or errors) of pending
    partitions, each before its partition's last wanted offset: the usual batch, then passed on
    whole, checked with C-level maps instead of a Python step per message."""
    if not messages or any(map(operator.is_not, map(Message.error, messages), repeat(None))):
        return False
    # A partition's messages come in offset order, so the dict keeps each partition's last offset.
    last: dict[Any, Any] = dict(
        zip(zip(map(Message.topic, messages), map(Message.partition, messages)), map(Message.offset, messages))
    )
    return all(key in pending and offset < pending[key] - 1 for key, offset in last.items())


def read_labels(bootstrap: str, names: TopicNames, tenants: Iterable[str]) -> tuple[dict[str, dict[str, LabelRecord]], int]:
    """Tenant -> event id -> latest label, read to the end of each tenant's labels topic (a tenant
    without one has no labels), and the number of records that were not valid labels."""
    existing = TopicAdmin(bootstrap).existing_topics()
    topics = {names.labels_topic(t): existing[names.labels_topic(t)] for t in tenants if names.labels_topic(t) in existing}
    labels: dict[str, dict[str, LabelRecord]] = {}
    invalid = 0
    values: dict[str, list[bytes | None]] = {topic: [] for topic in topics}
    for batch in read_ranges(bootstrap, window_ranges(bootstrap, topics, Window()), batch_size=50_000):
        for message in batch:
            values[message.topic()].append(message.value())
    for topic, topic_values in values.items():
        # A partition's records are in log order; an event id's labels all share one partition.
        labels[names.tenant_of_topic(topic)], bad = latest_labels(topic_values)
        invalid += bad
    return labels, invalid
