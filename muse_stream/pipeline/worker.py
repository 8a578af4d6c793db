"""The exactly-once consume-score-produce loop (confluent-kafka, KIP-447).

One transactional producer per worker serves every partition the worker owns. A batch is read,
scored and written, and its input offsets are sent to the same transaction with the consumer's
group metadata, so the broker fences a worker that lost its partitions in a rebalance.

Commits overlap the next batch: while one transaction's offsets and commit travel to the broker (on
a committer thread), the loop gathers and scores the next batch, and it begins the next transaction
only once that commit has settled. Rebalance callbacks run only inside a poll, and the revoke
callback first settles the commit in flight, so a transaction always lands under the generation its
offsets were sent with; records of revoked partitions still waiting in the batch being gathered are
dropped (their new owner reads them from the committed offset). A failed commit is aborted, and its
batch and the batch read after it are both read again from the committed offsets.

Error contract (librdkafka's): retriable -> retry; `txn_requires_abort()` -> abort, rewind the
consumer to the committed offsets, go on; anything else is fatal -> raise, and the restarted worker
(same worker id, so the same transactional.id) aborts whatever its previous life left open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.producing import call_retrying, produce_grouped
from muse_stream.clients.settings import consumer_config, transactional_producer_config
from muse_stream.errors import MuseError
from muse_stream.pipeline.metrics import BatchReport
from muse_stream.pipeline.scoring import (
    BatchOutcome,
    BatchScorer,
    OutgoingRecord,
    SnapshotLike,
    SourceRecord,
)
from muse_stream.topics import TopicError, TopicNames

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_ABORTS = 8
ABORT_BACKOFF_S = 0.1


class WorkerError(MuseError):
    """The worker cannot go on safely; its message says where and what to check."""


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str
    names: TopicNames
    worker_id: str
    max_batch: int = 5000
    # The longest a batch gathers before its transaction commits. Batches are natural (whatever is
    # queued when the previous transaction ends), so this cap binds only while records keep arriving
    # faster than one gathering call takes them; see Worker._gather.
    commit_interval_ms: int = 50
    # A worker that dies mid-transaction holds back readers of its output until this expires,
    # unless it restarts first with the same worker id (which aborts the transaction at once).
    transaction_timeout_ms: int = 10_000
    session_timeout_ms: int = 10_000

    @property
    def group_id(self) -> str:
        return self.names.worker_group

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}.{self.worker_id}"


@dataclass
class WorkerStats:
    batches: int = 0
    records_in: int = 0
    results: int = 0
    dead_letters: int = 0
    shadows: int = 0
    aborts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        return (f"in={self.records_in} results={self.results} dlq={self.dead_letters} shadow={self.shadows} "
                f"batches={self.batches} aborts={self.aborts} rate={self.records_in / elapsed:.0f}/s")


@dataclass
class _CommitInFlight:
    """A transaction whose records are queued and whose offsets and commit are on their way."""

    future: Future[None]
    next_offsets: dict[tuple[str, int], int]
    records_in: int
    results: int
    dead_letters: int
    shadows: int
    outcome: BatchOutcome | None = None  # for the metrics
    began_at: float = 0.0


class Worker:
    def __init__(self, settings: WorkerSettings, current_config: Callable[[], SnapshotLike],
                 scorer: BatchScorer | None = None) -> None:
        self.settings = settings
        self.current_config = current_config
        self.scorer = scorer or BatchScorer(settings.names)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._pending: list[Message] = []
        self._in_flight: _CommitInFlight | None = None
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="muse-committer")
        self._consecutive_aborts = 0
        self._known_tenants: set[str] = set()
        self._admin = TopicAdmin(settings.bootstrap)
        names = settings.names
        self.consumer = Consumer(consumer_config(
            settings.bootstrap, settings.group_id, **{
                "group.instance.id": settings.transactional_id,  # static membership: a restart keeps its partitions
                "session.timeout.ms": settings.session_timeout_ms,
                "topic.metadata.refresh.interval.ms": 2000,  # new tenants' input topics are found within seconds
                "fetch.wait.max.ms": 10,
                "queued.max.messages.kbytes": 65536,
            }))
        self.producer = Producer(transactional_producer_config(
            settings.bootstrap, settings.transactional_id, **{
                "transaction.timeout.ms": settings.transaction_timeout_ms,
                "message.timeout.ms": settings.transaction_timeout_ms - 1000,
                "linger.ms": 2,
                # A transaction begun right after a commit can get CONCURRENT_TRANSACTIONS while the
                # broker still writes the previous commit's markers; librdkafka retries after this
                # backoff (default 100 ms, which showed up as a ~100 ms p99 step), so retry soon.
                "retry.backoff.ms": 5,
                "retry.backoff.max.ms": 100,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 1_000_000,
                "compression.type": "lz4",
            }))
        self._input_pattern = names.input_topic_regex
        self.on_batch: Callable[[BatchReport], None] | None = None  # told of each settled batch (metrics.py)

    def stop(self) -> None:
        self._stop.set()

    # -- rebalance callbacks (run inside consumer.consume, never during a transaction) ------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        names = self.settings.names
        new_tenants = sorted({names.tenant_of_topic(p.topic) for p in partitions} - self._known_tenants)
        if new_tenants:
            # One ensure for all of them: per tenant, a worker given 500 tenants spent 12 s listing topics.
            specs = [spec for tenant in new_tenants for spec in names.tenant_topic_specs(tenant)]
            try:
                self._admin.ensure(specs)
            except TopicError:
                logger.exception("the output/DLQ topics of tenants %s are not usable", ", ".join(new_tenants))
                raise
            self._known_tenants.update(new_tenants)
        logger.info("assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The commit in flight carries offsets of these partitions under the current generation:
        # it must land (or be aborted) before they change hands.
        self._settle_in_flight()
        revoked = {(p.topic, p.partition) for p in partitions}
        before = len(self._pending)
        self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in revoked]
        logger.info("revoked %d partitions; dropped %d gathered records for their next owner",
                 len(revoked), before - len(self._pending))

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> WorkerStats:
        settings = self.settings
        self.producer.init_transactions()
        self.consumer.subscribe([self._input_pattern], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        logger.info("worker %s consuming %s as group %s", settings.worker_id, self._input_pattern, settings.group_id)
        last_report = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self._gather()
                if batch:
                    self._process(batch)
                else:
                    self._settle_in_flight()  # idle: let the last commit land and count it
                if time.monotonic() - last_report > 10:
                    guard = self.scorer.shadow_guard
                    shadows = "".join(f" shadow {sid[:12]}: {guard.failures[sid]} trips, {guard.skipped_events[sid]} skipped"
                                      for sid in sorted(set(guard.failures) | set(guard.skipped_events)))
                    logger.info("worker %s: %s%s", settings.worker_id, self.stats.line(), shadows)
                    last_report = time.monotonic()
            self._settle_in_flight()
        finally:
            self._committer.shutdown(wait=True)  # a commit still in flight lands or fails before we close
            self.consumer.close()
            self.producer.flush(5)
        return self.stats

    def _gather(self) -> list[Message]:
        """The next batch: what the consumer has queued, taken without waiting (natural batching: the
        busier the worker, the bigger its batches); when nothing is queued, the first record to arrive
        (an idle worker opens no empty transactions). At most `max_batch` records, and a batch stops
        gathering `commit_interval_ms` after this call began."""
        settings = self.settings
        consumer = self.consumer
        deadline = time.monotonic() + settings.commit_interval_ms / 1000
        while len(self._pending) < settings.max_batch and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = consumer.consume(settings.max_batch - len(self._pending), timeout=0)
            if not messages:
                if self._pending:
                    break  # nothing more queued: commit what we have
                message = consumer.poll(remaining)  # idle: wait for the first record, not for a full batch
                if message is None:
                    continue
                messages = [message]
            for message in messages:
                error = message.error()
                if error is None:
                    self._pending.append(message)
                elif error.fatal():
                    raise KafkaException(error)
                else:
                    logger.warning("consumer error on %s[%s]: %s", message.topic(), message.partition(), error.str())
        batch, self._pending = self._pending, []
        return batch

    def _process(self, batch: list[Message]) -> None:
        tenant_of = self.settings.names.tenant_of_topic
        records: list[SourceRecord] = []
        append = records.append
        next_offsets: dict[tuple[str, int], int] = {}
        for m in batch:
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            append(SourceRecord(tenant_of(topic), topic, partition, offset, m.timestamp()[1], m.key(), m.value()))
            next_offsets[(topic, partition)] = offset + 1
        outcome = self.scorer.score(records, self.current_config())
        if not self._settle_in_flight():
            # The previous transaction was aborted and its input rewound; this batch was read after
            # it, so it goes back too.
            self._rewind([TopicPartition(t, p) for (t, p) in next_offsets])
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        began_at = time.monotonic()
        try:
            self.producer.begin_transaction()
            self._produce_all(outcome.results)
            self._produce_all(outcome.dead_letters)
            self._produce_all(outcome.shadows)
        except KafkaException as exception:
            self._on_failed_transaction(exception, len(batch), next_offsets)
            return
        group_metadata = self.consumer.consumer_group_metadata()
        in_flight = self._in_flight = _CommitInFlight(
            Future(), next_offsets, len(batch), len(outcome.results), len(outcome.dead_letters), len(outcome.shadows), outcome, began_at)
        if len(batch) >= self.settings.max_batch:
            # A full batch means a backlog: read and score the next batch while this one commits.
            in_flight.future = self._committer.submit(self._finish_transaction, offsets, group_metadata)
            return
        # Below the cap there is little to overlap, and the hop to the committer thread cost latency
        # (muse bench latency: p50 10 -> 19 ms at 1,000 events/s), so commit right here.
        try:
            self._finish_transaction(offsets, group_metadata)
            in_flight.future.set_result(None)
        except KafkaException as exception:
            in_flight.future.set_exception(exception)
        self._settle_in_flight()

    def _finish_transaction(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        """On the committer thread: the input offsets into the transaction, then the commit."""
        call_retrying(self.producer.send_offsets_to_transaction, offsets, group_metadata)
        call_retrying(self.producer.commit_transaction)

    def _settle_in_flight(self) -> bool:
        """Wait for the commit in flight, if any: count it if it landed, abort and rewind it if not.
        False if it failed (its input is rewound)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        try:
            in_flight.future.result()
        except KafkaException as exception:
            self._on_failed_transaction(exception, in_flight.records_in, in_flight.next_offsets)
            return False
        if self.on_batch is not None and in_flight.outcome is not None:
            self.on_batch(BatchReport(in_flight.outcome, in_flight.records_in, True, time.monotonic() - in_flight.began_at))
        self._consecutive_aborts = 0
        stats = self.stats
        stats.batches += 1
        stats.records_in += in_flight.records_in
        stats.results += in_flight.results
        stats.dead_letters += in_flight.dead_letters
        stats.shadows += in_flight.shadows
        return True

    def _on_failed_transaction(self, exception: KafkaException, records_in: int,
                               next_offsets: dict[tuple[str, int], int]) -> None:
        error: KafkaError = exception.args[0]
        if error.fatal():  # fenced or broken: only a new producer (a restart) can go on
            raise exception
        # Anything else inside a transaction leaves it unusable: abort it, read the batch again.
        self._abort_and_rewind(error, records_in, next_offsets)

    def _abort_and_rewind(self, error: KafkaError, records_in: int, next_offsets: dict[tuple[str, int], int]) -> None:
        self._consecutive_aborts += 1
        self.stats.aborts += 1
        span = ", ".join(f"{topic}[{partition}] up to offset {offset - 1}" for (topic, partition), offset in next_offsets.items())
        logger.warning("transaction of %d records aborted (%s): %s; rewinding to the committed offsets",
                    records_in, error.str(), span)
        call_retrying(self.producer.abort_transaction)
        self._rewind([TopicPartition(t, p) for (t, p) in next_offsets])
        if self._consecutive_aborts >= MAX_CONSECUTIVE_ABORTS:
            raise WorkerError(
                f"worker {self.settings.worker_id}: {self._consecutive_aborts} transactions in a row aborted, the last "
                f"on {error.str()} ({span}); nothing was committed for them and the input is intact. Check the output "
                "and DLQ topics of these tenants (deleted? size or ACL limits?) and `muse broker logs`, then restart."
            )
        time.sleep(min(ABORT_BACKOFF_S * 2 ** (self._consecutive_aborts - 1), 5.0))

    def _produce_all(self, records: list[OutgoingRecord]) -> None:
        produce_grouped(self.producer, records)

    def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Back to the last committed offsets, so the aborted batch is read and scored again."""
        self._pending = []
        try:
            committed_offsets = self.consumer.committed(partitions, timeout=30)
        except KafkaException as error:  # without them the consumer's positions are past uncommitted input
            raise WorkerError(f"worker {self.settings.worker_id}: cannot read the committed offsets of "
                              f"{[f'{p.topic}[{p.partition}]' for p in partitions]} to rewind: {error}; restart it") from error
        for committed in committed_offsets:
            target = committed.offset if committed.offset >= 0 else OFFSET_BEGINNING
            try:
                self.consumer.seek(TopicPartition(committed.topic, committed.partition, target))
            except KafkaException as error:  # revoked meanwhile: its new owner reads it
                logger.info("not rewinding %s[%d]: %s", committed.topic, committed.partition, error)
