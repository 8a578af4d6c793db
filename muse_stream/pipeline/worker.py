"""The exactly-once consume-score-produce loop (confluent-kafka, KIP-447).

One transactional producer per worker serves every partition the worker owns. The loop gathers a
batch, scores it, produces its records and commits them with its input offsets and the consumer's
group metadata in one transaction, so the broker fences a worker that lost its partitions in a
rebalance. How the commit overlaps the next batch, and what a failure aborts and rewinds, is
`pipeline/transaction.py`'s job. Records of revoked partitions still waiting in the batch being
gathered are dropped (their new owner reads them from the committed offset). Batches are gathered
fairly across tenants, so one tenant's backlog does not starve the others (`pipeline/fairness.py`;
the worker only pauses and resumes the partitions it names).

Broker failures: when the clients break (a fatal error, or a transaction whose outcome stayed
unknown past its retry deadline), the worker closes them and makes new ones with the same ids,
which is what a restarted process would do, without the restart. Why not let librdkafka rejoin: a
static member whose session timed out while the broker was away rejoins with an empty member id,
the coordinator gives its instance id a new member id, and the old one's next request is answered
FENCED_INSTANCE_ID, which librdkafka makes a fatal, permanent error of the consumer
(librdkafka#3437); the producer's offsets, sent with the old group metadata, fail with it. Only a
new consumer (and a new producer, whose init_transactions settles the transaction the old one left
open) goes on. The worker gives up, loudly, only once nothing has committed for `outage_limit_ms`.
"""

from __future__ import annotations

import functools
import gc
import logging
import operator
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from muse_stream.clients.admin import TopicAdmin
from muse_stream.clients.producing import produce_grouped
from muse_stream.clients.reading import good_batch
from muse_stream.clients.settings import consumer_config, transactional_producer_config, worker_prefetch
from muse_stream.defaults import COMMIT_INTERVAL_MS, CONTENDED_BATCH, MAX_BATCH, OUTAGE_LIMIT_MS
from muse_stream.pipeline.fairness import FairShare
from muse_stream.pipeline.metrics import BatchReport
from muse_stream.pipeline.scoring import (
    BatchScorer,
    OutgoingRecord,
    Scorer,
    SnapshotLike,
    SourceRecord,
)
from muse_stream.pipeline.transaction import (
    ABORT_BACKOFF_S,
    CALL_TIMEOUT_S,
    MAX_CONSECUTIVE_ABORTS,
    ClientsBroken,
    NextOffsets,
    TransactionLifecycle,
    WorkerError,
    WorkerStats,
)
from muse_stream.topics import TopicError, TopicNames

__all__ = ["MAX_CONSECUTIVE_ABORTS", "Worker", "WorkerError", "WorkerSettings", "WorkerStats"]

logger = logging.getLogger(__name__)
_SECOND = operator.itemgetter(1)
# A tenant whose records are younger than this (by their Kafka timestamps) is served live: someone
# waits for its results, so a flood beside it gets smaller batches (pipeline/fairness.py).
LIVE_RECORD_AGE_MS = 1000


@dataclass(frozen=True)
class WorkerSettings:
    bootstrap: str
    names: TopicNames
    worker_id: str
    max_batch: int = MAX_BATCH
    # The most records per transaction while a flood shares the worker with a tenant served live
    # (fair shares only): what that tenant's event waits behind (pipeline/fairness.py).
    contended_batch: int = CONTENDED_BATCH
    # The longest a batch gathers before its transaction commits. Batches are natural (whatever is
    # queued when the previous transaction ends), so this cap binds only while records keep arriving
    # faster than one gathering call takes them; see Worker._gather.
    commit_interval_ms: int = COMMIT_INTERVAL_MS
    # A worker that dies mid-transaction holds back readers of its output until this expires,
    # unless it restarts first with the same worker id (which aborts the transaction at once).
    transaction_timeout_ms: int = 10_000
    session_timeout_ms: int = 10_000
    # How long a transaction's offsets, commit or abort are retried on errors librdkafka calls
    # retriable before the worker stops and says so (a restart settles the transaction).
    transaction_retry_timeout_ms: int = 30_000
    # How often the worker logs its counters and its scorer's.
    report_interval_ms: int = 10_000
    # Fair batch assembly across partitions (pipeline/fairness.py): a tenant's backlog cannot
    # starve the others. Off only to show what it prevents (tests, `muse bench noisy-neighbour`).
    fair_share: bool = True
    # How long the worker keeps recreating broken clients (a broker down, restarting, unreachable)
    # without a transaction committing before it stops with an error saying what to check.
    outage_limit_ms: int = OUTAGE_LIMIT_MS

    @property
    def group_id(self) -> str:
        return self.names.worker_group

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}.{self.worker_id}"


_new_source_record = functools.partial(tuple.__new__, SourceRecord)  # from a tuple, no Python frame
# The Message accessors, typed as on a Record (the batch holds no error events): the same C methods, no per-batch cost.
_topic_of = cast(Callable[[Message], str], Message.topic)
_partition_of = cast(Callable[[Message], int], Message.partition)
_timestamp_of = cast(Callable[[Message], tuple[int, int]], Message.timestamp)
_offset_of = cast(Callable[[Message], int], Message.offset)


def source_records(batch: list[Message], tenant_of: Callable[[str], str]) -> tuple[list[SourceRecord], NextOffsets]:
    """The batch as SourceRecords, and each partition's next offset. Column by column, with C-level
    maps over the Message accessors: no Python code runs per message."""
    topics = list(map(_topic_of, batch))
    partitions = list(map(_partition_of, batch))
    offsets = list(map(_offset_of, batch))
    tenants = {topic: tenant_of(topic) for topic in set(topics)}
    records = list(
        map(
            _new_source_record,
            zip(
                map(tenants.__getitem__, topics),
                topics,
                partitions,
                offsets,
                map(_SECOND, map(Message.timestamp, batch)),
                map(Message.key, batch),
                map(Message.value, batch),
            ),
        )
    )
    # Offsets rise within a partition, so the last of each partition wins, as it should.
    return records, dict(zip(zip(topics, partitions), map((1).__add__, offsets)))


class Worker:
    def __init__(
        self, settings: WorkerSettings, current_config: Callable[[], SnapshotLike], scorer: Scorer | None = None
    ) -> None:
        self.settings = settings
        self.current_config = current_config
        self.scorer: Scorer = scorer or BatchScorer(settings.names)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._pending: list[Message] = []
        self._known_tenants: set[str] = set()
        self._admin = TopicAdmin(settings.bootstrap)
        self._input_pattern = settings.names.input_topic_regex
        self._on_batch: Callable[[BatchReport], None] | None = None
        self._open_clients()

    @property
    def on_batch(self) -> Callable[[BatchReport], None] | None:
        """Told of each committed batch, on the loop's thread (muse_stream/pipeline/metrics.py); kept
        across recreated clients."""
        return self._on_batch

    @on_batch.setter
    def on_batch(self, listener: Callable[[BatchReport], None] | None) -> None:
        self._on_batch = self.transactions.on_batch = listener

    def _open_clients(self) -> None:
        """A consumer, a transactional producer and their transaction lifecycle, with the worker's
        ids: made at start, and again whenever the previous ones broke."""
        settings = self.settings
        self.consumer = Consumer(
            consumer_config(
                settings.bootstrap,
                settings.group_id,
                **{
                    "group.instance.id": settings.transactional_id,  # static membership: a restart keeps its partitions
                    "session.timeout.ms": settings.session_timeout_ms,
                    "topic.metadata.refresh.interval.ms": 2000,  # new tenants' input topics are found within seconds
                    "fetch.wait.max.ms": 10,
                    **worker_prefetch(settings.max_batch, fair=settings.fair_share),
                },
            )
        )
        self.producer = Producer(
            transactional_producer_config(
                settings.bootstrap,
                settings.transactional_id,
                **{
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
                },
            )
        )
        # A new consumer has nothing paused: fair shares start afresh with it.
        self._fair = FairShare(settings.max_batch, settings.contended_batch) if settings.fair_share else None
        self._saturated = False  # the last batch was full: others may be waiting behind it
        self._paused_last_batch = False  # fair shares paused a tenant while the last batch was gathered
        self.transactions = TransactionLifecycle(
            self.producer,
            self.consumer,
            self.stats,
            worker_id=settings.worker_id,
            retry_timeout_s=settings.transaction_retry_timeout_ms / 1000,
            abort_backoff_s=ABORT_BACKOFF_S,  # this module's, read now, so tests can shorten it
            finish=self._finish_transaction,
            drop_gathered=self._drop_gathered,
        )
        self.transactions.on_batch = self._on_batch
        self._closing = False

    def _close_clients(self) -> None:
        """Close broken clients without settling anything: their successors' init_transactions aborts
        the transaction left open, and the new consumer resumes from the committed offsets."""
        self.transactions.abandon()
        self._pending = []
        self._closing = True  # the revoke callback close() may run has nothing to settle
        # Not producer.close(): it flushes, which waits for a broker that may be away. Purged, the old
        # producer has nothing to send, and the new one's init_transactions fences it.
        for close in (self.consumer.close, self.producer.purge):
            try:
                close()
            except Exception as error:  # noqa: BLE001 - broken clients may fail to close; they are dropped anyway
                logger.debug("closing a broken client: %s", error)

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
        if self._closing:
            return
        # The commit in flight carries offsets of these partitions under the current generation:
        # it must land (or be aborted) before they change hands.
        self.transactions.settle()
        revoked = {(p.topic, p.partition) for p in partitions}
        self._forget_fair_share(revoked)
        before = len(self._pending)
        self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in revoked]
        logger.info(
            "revoked %d partitions; dropped %d gathered records for their next owner", len(revoked), before - len(self._pending)
        )

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> WorkerStats:
        """Consume, score and commit until stopped; recreate the clients whenever they break, until
        nothing has committed for the outage limit."""
        settings = self.settings
        # What start-up made (modules, the model, the config) lives as long as the process: frozen,
        # a full collection no longer walks it. Unfrozen, one full collection in the loop stalled
        # every batch in flight for tens to hundreds of ms: the p99 of `muse bench latency`.
        gc.collect()
        gc.freeze()
        outage_since: float | None = None
        batches_before = self.stats.batches
        started_at: float | None = None  # when the current clients started, if they did
        # Clients that ran this long without failing count as recovered, even if nothing came to commit.
        healthy_s = 2 * settings.transaction_retry_timeout_ms / 1000
        recreated = 0
        try:
            while True:
                try:
                    self._start_clients()
                    started_at = time.monotonic()
                    self._loop()
                    return self.stats
                except (ClientsBroken, KafkaException) as failure:
                    if isinstance(failure, KafkaException) and not failure.args[0].fatal():
                        raise
                    now = time.monotonic()
                    recovered = self.stats.batches > batches_before or (started_at is not None and now - started_at > healthy_s)
                    if outage_since is None or recovered:
                        outage_since, batches_before = now, self.stats.batches
                    started_at = None
                    self._close_clients()
                    if self._stop.is_set():
                        return self.stats
                    if now - outage_since >= settings.outage_limit_ms / 1000:
                        raise WorkerError(
                            f"worker {settings.worker_id}: no transaction has committed for {now - outage_since:.0f} s "
                            f"(outage limit {settings.outage_limit_ms / 1000:g} s) over {recreated} recreations of its "
                            f"Kafka clients; the last failure: {failure}. Nothing is lost: the input is intact and the "
                            f"next worker with this id aborts what was left open. Check that the brokers at "
                            f"{settings.bootstrap} are up and reachable from here (`muse broker status`, "
                            "`muse broker logs`), that __transaction_state and __consumer_offsets have enough in-sync "
                            "replicas (min.insync.replicas), and that no other live worker uses this id; then restart."
                        ) from None
                    recreated += 1
                    logger.warning(
                        "worker %s: its Kafka clients broke (%s); recreating them with the same ids "
                        "(outage %.0f s of at most %g s)",
                        settings.worker_id,
                        failure,
                        now - outage_since,
                        settings.outage_limit_ms / 1000,
                    )
                    time.sleep(min(1.0 * recreated, 5.0) * random.uniform(0.5, 1.0))
                    self._open_clients()
        finally:
            self.transactions.close()  # a commit still in flight lands or fails before we close
            if not self._closing:
                self._closing = True
                self.consumer.close()
                self.producer.flush(5)

    def _start_clients(self) -> None:
        """Fence any previous producer with this transactional.id (aborting what it left open) and
        subscribe. init_transactions is bounded and retried, so a broker that is still away is an
        outage (ClientsBroken), not a hang."""
        settings = self.settings
        deadline = time.monotonic() + settings.transaction_retry_timeout_ms / 1000
        while True:
            try:
                self.producer.init_transactions(CALL_TIMEOUT_S)
                break
            except KafkaException as exception:
                error = exception.args[0]
                if error.fatal() or not error.retriable() or time.monotonic() > deadline or self._stop.is_set():
                    raise ClientsBroken(
                        f"worker {settings.worker_id}: initialising transactions as "
                        f"{settings.transactional_id} failed: {error.str()}"
                    ) from exception
        self.consumer.subscribe(
            [self._input_pattern], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        logger.info("worker %s consuming %s as group %s", settings.worker_id, self._input_pattern, settings.group_id)

    def _loop(self) -> None:
        """Gather, score and commit until stopped."""
        settings = self.settings
        last_report = time.monotonic()
        while not self._stop.is_set():
            batch = self._gather()
            if batch:
                self._process(batch)
            else:
                self.transactions.settle()  # idle: let the last commit land and count it
            if time.monotonic() - last_report > settings.report_interval_ms / 1000:
                self._report()
                last_report = time.monotonic()
        self.transactions.settle()

    def _gather(self) -> list[Message]:
        """The next batch: what the consumer has queued, taken without waiting (natural batching: the
        busier the worker, the bigger its batches); when nothing is queued, the first record to arrive
        (an idle worker opens no empty transactions). At most `max_batch` records (`contended_batch`
        while a flood shares the worker with a tenant served live), and a batch stops gathering
        `commit_interval_ms` after this call began."""
        settings = self.settings
        consumer = self.consumer
        fair = self._fair
        if fair is not None and (self._saturated or self._paused_last_batch):
            fair.waiting(self._records_waiting())
        deadline = time.monotonic() + settings.commit_interval_ms / 1000
        while len(self._pending) < self._batch_limit() and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # With fair shares, take no more at a time than fills a tenant's share (FairShare.take), so it is paused there.
            wanted, taken = self._batch_limit() - len(self._pending), len(self._pending)
            messages = consumer.consume(wanted if fair is None else min(wanted, fair.take), timeout=0)
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
                elif error.fatal() or error.code() == KafkaError._FATAL:
                    # A fatal consumer error (e.g. its static membership fenced) arrives as an event
                    # whose code is _FATAL and whose fatal() may be False: either way, new clients.
                    raise ClientsBroken(f"worker {self.settings.worker_id}: its consumer failed: {error.str()}")
                else:
                    logger.warning("consumer error on %s[%s]: %s", message.topic(), message.partition(), error.str())
            if fair is not None:
                self._pause_full(fair, self._pending[taken:])
        self._saturated = len(self._pending) >= self._batch_limit()
        if fair is not None:
            self._resume_paused(fair)
        batch, self._pending = self._pending, []
        return batch

    def _contended(self, topics: set[str]) -> bool:
        """Whether the batch just gathered (of these tenants) held a flood beside a tenant served
        live: one tenant has records waiting, and another's records in the batch are all younger
        than LIVE_RECORD_AGE_MS. Tenants catching up on backlogs are not waited on by anyone."""
        backlogged = self._records_waiting().keys() & topics
        if not backlogged:
            return False
        oldest: dict[str, int] = {}
        for topic, (_, timestamp) in zip(map(_topic_of, self._pending), map(_timestamp_of, self._pending)):
            if timestamp < oldest.get(topic, timestamp + 1):
                oldest[topic] = timestamp
        fresh_since = time.time() * 1000 - LIVE_RECORD_AGE_MS
        live = {topic for topic, timestamp in oldest.items() if timestamp >= fresh_since}
        return bool(live) and (len(live) > 1 or len(backlogged) > 1 or live != backlogged)

    def _batch_limit(self) -> int:
        """Records the batch being gathered may hold: fewer while tenants share it (fair shares)."""
        return self.settings.max_batch if self._fair is None else self._fair.limit

    def _records_waiting(self) -> dict[str, int]:
        """Input topics with a partition whose position is behind the high watermark of its last
        fetch (librdkafka's cached figures: no request), and by how many offsets in all. Asked before
        a batch by a worker whose last batch was full or paused a tenant, and when a batch of several
        tenants closes (_contended)."""
        consumer = self.consumer
        waiting: dict[str, int] = {}
        for tp in consumer.position(consumer.assignment()):
            if tp.offset >= 0:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high > tp.offset:
                    waiting[tp.topic] = waiting.get(tp.topic, 0) + high - tp.offset
        return waiting

    def _pause_full(self, fair: FairShare, messages: list[Message]) -> None:
        """Count the records just taken (no error events); pause the partitions that filled their
        share of this batch (pipeline/fairness.py)."""
        full = fair.admit(zip(map(_topic_of, messages), map(_partition_of, messages)))
        if full:
            self.consumer.pause([TopicPartition(topic, partition) for topic, partition in full])

    def _resume_paused(self, fair: FairShare) -> None:
        """The batch is closed: fetch its paused partitions again (from the offset after the last
        record taken) while it is scored; a full batch's partitions are paused and resumed, to make
        room in librdkafka's queue for every partition's next records, unless the tenants the worker
        owns leave no one to make room for (one tenant, or all of them catching up on backlogs)."""
        owned = {tp.topic for tp in self.consumer.assignment()} if self._saturated else None  # only a full batch asks
        self._paused_last_batch = bool(fair.paused)
        cycled, resumed = fair.close_batch(full=self._saturated, contended=self._contended, owned=owned)
        if cycled:
            self.consumer.pause([TopicPartition(topic, partition) for topic, partition in cycled])
        if resumed:
            self.consumer.resume([TopicPartition(topic, partition) for topic, partition in resumed])

    def _forget_fair_share(self, partitions: set[tuple[str, int]]) -> None:
        """Revoked or rewound partitions leave the fair-share count, resumed if paused (a paused
        partition would stay paused when assigned again)."""
        if self._fair is None:
            return
        paused = self._fair.paused & partitions
        self._fair.forget(partitions)
        if paused:
            try:
                self.consumer.resume([TopicPartition(topic, partition) for topic, partition in sorted(paused)])
            except KafkaException as error:
                logger.info("not resuming revoked partitions %s: %s", sorted(paused), error)

    def _process(self, batch: list[Message]) -> None:
        """One transaction: score the batch, produce what the scorer returned, commit it with the offsets."""
        records, next_offsets = source_records(batch, self.settings.names.tenant_of_topic)
        outcome = self.scorer.score(records, self.current_config())
        transactions = self.transactions
        if not transactions.begin(next_offsets, len(batch)):
            return
        try:
            self._produce_all(outcome.results)
            self._produce_all(outcome.dead_letters)
            self._produce_all(outcome.shadows)
        except KafkaException as exception:
            transactions.fail(exception)
            return
        transactions.commit(outcome, overlap=len(batch) >= self.settings.max_batch)

    def _produce_all(self, records: list[OutgoingRecord]) -> None:
        produce_grouped(self.producer, records)

    def _finish_transaction(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        """Offsets into the transaction, then the commit (TransactionLifecycle.finish); a method of
        the worker so that a test's worker can make a commit fail."""
        self.transactions.finish(offsets, group_metadata)

    def _drop_gathered(self) -> set[tuple[str, int]]:
        """Drop the records gathered for the next batch (a rewind goes back before them); their partitions."""
        dropped = {(m.topic(), m.partition()) for m in good_batch(self._pending)}
        self._pending = []
        self._forget_fair_share(dropped)
        return dropped

    def _report(self) -> None:
        counters = "".join(f" {name}={value}" for name, value in self.scorer.counters().items())
        logger.info("worker %s: %s%s", self.settings.worker_id, self.stats.line(), counters)
