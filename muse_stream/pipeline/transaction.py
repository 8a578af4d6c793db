"""The lifecycle of a worker's Kafka transactions, in one object: begin, commit, settle, abort, rewind.

The worker's loop reads like librdkafka's transactional example (gather, score, produce, commit);
what keeps it exactly-once under a backlog, rebalances and failures lives here.

Commits overlap the next batch: a full batch's offsets and commit travel to the broker on a
committer thread while the loop gathers and scores the next batch, and the next transaction begins
only once that commit has settled. A batch below the cap is committed at once and waited for:
there is little to overlap (letting the loop run meanwhile cost latency, muse bench latency: p50
10 -> 19 ms at 1,000 events/s). Either way the offsets and commit run on their own daemon thread,
waited for with a deadline: librdkafka's send_offsets_to_transaction can block past its timeout when
the group coordinator went away (librdkafka#5456, #5511; seen here after a broker restart), and a
call stuck for good must cost the worker its producer, never its loop. The worker's revoke
callback settles the commit in flight first, so a transaction always lands under the generation its
offsets were sent with. A failed commit is aborted, and its batch and the batch read after it
are both read again from the committed offsets.

Error contract (librdkafka's): retriable -> retry, each call bounded (librdkafka's default is to
block forever, and a commit sent just before a broker died once hung a worker for good), for at most
`retry_timeout_s`; past that the transaction's outcome is unknown and only new clients with the same
transactional.id settle it: ClientsBroken. `txn_requires_abort()` -> abort, rewind the consumer to
the committed offsets, go on; 8 aborts in a row stop the worker. Anything else is fatal (fenced, or a
consumer whose static membership was fenced) -> ClientsBroken too. The worker answers ClientsBroken
by recreating its consumer and producer (same ids: init_transactions aborts what the old producer
left open, the consumer resumes from the committed offsets), for as long as its outage limit allows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from muse_stream.clients.producing import call_retrying
from muse_stream.errors import MuseError
from muse_stream.pipeline.metrics import BatchReport
from muse_stream.pipeline.scoring import BatchOutcome

logger = logging.getLogger(__name__)

MAX_CONSECUTIVE_ABORTS = 8
ABORT_BACKOFF_S = 0.1

# (topic, partition) -> the offset after the batch's last record there: what the transaction commits.
NextOffsets = dict[tuple[str, int], int]
# Sends a transaction's offsets and commits it; the worker passes its own, which tests override.
Finish = Callable[[list[TopicPartition], object], None]


# The longest one transactional call blocks before it is retried (librdkafka's default: forever).
CALL_TIMEOUT_S = 10.0


class WorkerError(MuseError):
    """The worker cannot go on safely; its message says where and what to check."""


class ClientsBroken(WorkerError):
    """The worker's Kafka clients cannot go on (fatal error, fenced, or retries exhausted while the
    broker was away); new clients with the same ids can, and settle what these left open."""


def bounded(call: Callable[..., None], deadline: float) -> Callable[..., None]:
    """``call`` with a timeout: CALL_TIMEOUT_S, or what is left until ``deadline`` (at least 1 s)."""
    # The timeout goes last and positional: confluent-kafka takes no keywords here.
    return lambda *args: call(*args, max(1.0, min(CALL_TIMEOUT_S, deadline - time.monotonic())))


@dataclass
class WorkerStats:
    """What the worker's committed transactions carried, and how many transactions were aborted."""

    batches: int = 0
    records_in: int = 0
    results: int = 0
    dead_letters: int = 0
    shadows: int = 0
    aborts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        return (
            f"in={self.records_in} results={self.results} dlq={self.dead_letters} shadow={self.shadows} "
            f"batches={self.batches} aborts={self.aborts} rate={self.records_in / elapsed:.0f}/s"
        )


@dataclass
class _CommitInFlight:
    """A transaction whose records are queued and whose offsets and commit are on their way."""

    future: Future[None]
    next_offsets: NextOffsets
    records_in: int
    results: int
    dead_letters: int
    shadows: int
    outcome: BatchOutcome  # for whoever is told of settled batches (metrics)
    began_at: float  # monotonic time the transaction began


def _on_daemon_thread(call: Callable[..., None], *args: object) -> Future[None]:
    """Run ``call(*args)`` on a daemon thread: one stuck in librdkafka for good neither blocks the
    loop (which waits with a deadline) nor the process's exit."""
    future: Future[None] = Future()

    def run() -> None:
        try:
            call(*args)
            future.set_result(None)
        except BaseException as exception:  # noqa: BLE001 - handed to whoever settles the commit
            future.set_exception(exception)

    threading.Thread(target=run, name="muse-committer", daemon=True).start()
    return future


def describe_offsets(next_offsets: NextOffsets) -> str:
    return ", ".join(f"{topic}[{partition}] up to offset {offset - 1}" for (topic, partition), offset in next_offsets.items())


class TransactionLifecycle:
    """Begins, commits (overlapped or inline), settles and aborts one worker's transactions, and
    rewinds its consumer after an abort. Called from the worker's loop thread (and its rebalance
    callbacks, which run there); only `finish` runs on the committer thread."""

    def __init__(
        self,
        producer: Producer,
        consumer: Consumer,
        stats: WorkerStats,
        *,
        worker_id: str,
        retry_timeout_s: float,
        abort_backoff_s: float = ABORT_BACKOFF_S,
        finish: Finish | None = None,
        drop_gathered: Callable[[], Iterable[tuple[str, int]]] = lambda: (),
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.stats = stats
        self.worker_id = worker_id
        self.retry_timeout_s = retry_timeout_s
        self.abort_backoff_s = abort_backoff_s
        self._finish = finish or self.finish
        # Records gathered but not yet in a transaction are past the offsets a rewind goes back to:
        # a rewind drops them and rewinds their partitions too.
        self._drop_gathered = drop_gathered
        self._open: tuple[NextOffsets, int, float] | None = None  # the transaction being written: offsets, records in, began
        # Told of each committed batch on the loop's thread (muse_stream/pipeline/metrics.py).
        self.on_batch: Callable[[BatchReport], None] | None = None
        self._in_flight: _CommitInFlight | None = None
        self._consecutive_aborts = 0
        # How long a commit may take on its thread before it counts as hung: its own retry deadline,
        # plus one bounded call that began just before it.
        self._hang_timeout_s = retry_timeout_s + CALL_TIMEOUT_S + 5.0

    def begin(self, next_offsets: NextOffsets, records_in: int) -> bool:
        """Open the transaction of a scored batch, once the previous commit has settled. False if the
        batch must not go in: the previous commit failed (this batch was read after its input, so it
        is rewound too), or the transaction could not begin (aborted and rewound)."""
        if not self.settle():
            self._rewind(list(next_offsets))
            return False
        self._open = (next_offsets, records_in, time.monotonic())
        try:
            self.producer.begin_transaction()
        except KafkaException as exception:
            self.fail(exception)
            return False
        return True

    def fail(self, exception: KafkaException) -> None:
        """The open transaction cannot be completed: a fatal error raises; anything else inside a
        transaction leaves it unusable, so it is aborted and its batch read again."""
        assert self._open is not None, "fail() without an open transaction"
        (next_offsets, records_in, _), self._open = self._open, None
        self._on_failed(exception, records_in, next_offsets)

    def commit(self, outcome: BatchOutcome, *, overlap: bool) -> None:
        """Send the open transaction's offsets and commit it: on the committer thread if `overlap`
        (a full batch, so the loop reads and scores the next one meanwhile), else right here."""
        assert self._open is not None, "commit() without an open transaction"
        (next_offsets, records_in, began_at), self._open = self._open, None
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        group_metadata = self.consumer.consumer_group_metadata()
        in_flight = self._in_flight = _CommitInFlight(
            Future(),
            next_offsets,
            records_in,
            len(outcome.results),
            len(outcome.dead_letters),
            len(outcome.shadows),
            outcome,
            began_at,
        )
        in_flight.future = _on_daemon_thread(self._finish, offsets, group_metadata)
        if not overlap:
            self.settle()

    def finish(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        """The input offsets into the transaction, then the commit, each retried while librdkafka
        says retriable, for at most `retry_timeout_s` together."""
        deadline = time.monotonic() + self.retry_timeout_s
        try:
            call_retrying(
                bounded(self.producer.send_offsets_to_transaction, deadline), offsets, group_metadata, deadline=deadline
            )
            call_retrying(bounded(self.producer.commit_transaction, deadline), deadline=deadline)
        except KafkaException as exception:
            if not exception.args[0].retriable():
                raise
            next_offsets = {(tp.topic, tp.partition): tp.offset for tp in offsets}
            raise self._retries_exhausted("commit", exception.args[0], next_offsets) from None

    def settle(self) -> bool:
        """Wait for the commit in flight, if any: count it if it landed, abort and rewind it if not.
        False if it failed (its input is rewound)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        try:
            in_flight.future.result(timeout=self._hang_timeout_s)
        except FutureTimeout:
            raise ClientsBroken(
                f"worker {self.worker_id}: the commit of the transaction for {describe_offsets(in_flight.next_offsets)} "
                f"has not returned within {self._hang_timeout_s:g} s (a librdkafka call blocked past its timeout); "
                "whether it landed is unknown, and new clients with the same id settle it"
            ) from None
        except KafkaException as exception:
            self._on_failed(exception, in_flight.records_in, in_flight.next_offsets)
            return False
        if self.on_batch is not None:
            self.on_batch(BatchReport(in_flight.outcome, in_flight.records_in, True, time.monotonic() - in_flight.began_at))
        self._consecutive_aborts = 0
        stats = self.stats
        stats.batches += 1
        stats.records_in += in_flight.records_in
        stats.results += in_flight.results
        stats.dead_letters += in_flight.dead_letters
        stats.shadows += in_flight.shadows
        return True

    def close(self) -> None:
        """Wait for a commit still in flight to land or fail before the clients close (a hung one no
        longer than a commit may take)."""
        if self._in_flight is not None:
            try:
                self._in_flight.future.result(timeout=self._hang_timeout_s)
            except Exception:  # noqa: BLE001 - the worker is stopping; the next one with this id settles it
                pass

    def abandon(self) -> None:
        """Forget what is open or in flight (its clients are broken: their successors' init_transactions
        settles it), once the commit thread is done with the old producer or has hung."""
        self.close()
        self._open = self._in_flight = None

    # -- failures --------------------------------------------------------------------------------

    def _on_failed(self, exception: KafkaException, records_in: int, next_offsets: NextOffsets) -> None:
        error: KafkaError = exception.args[0]
        if error.fatal():  # fenced or broken: only a new producer can go on
            raise ClientsBroken(
                f"worker {self.worker_id}: fatal error in the transaction for {describe_offsets(next_offsets)}: {error.str()}"
            ) from exception
        self._abort_and_rewind(error, records_in, next_offsets)

    def _abort_and_rewind(self, error: KafkaError, records_in: int, next_offsets: NextOffsets) -> None:
        self._consecutive_aborts += 1
        self.stats.aborts += 1
        span = describe_offsets(next_offsets)
        logger.warning(
            "transaction of %d records aborted (%s): %s; rewinding to the committed offsets", records_in, error.str(), span
        )
        try:
            deadline = time.monotonic() + self.retry_timeout_s
            call_retrying(bounded(self.producer.abort_transaction, deadline), deadline=deadline)
        except KafkaException as exception:
            if not exception.args[0].retriable():
                raise
            raise self._retries_exhausted("abort", exception.args[0], next_offsets) from None
        self._rewind(list(next_offsets))
        if self._consecutive_aborts >= MAX_CONSECUTIVE_ABORTS:
            raise WorkerError(
                f"worker {self.worker_id}: {self._consecutive_aborts} transactions in a row aborted, the last "
                f"on {error.str()} ({span}); nothing was committed for them and the input is intact. Check the output "
                "and DLQ topics of these tenants (deleted? size or ACL limits?) and `muse broker logs`, then restart."
            )
        time.sleep(min(self.abort_backoff_s * 2 ** (self._consecutive_aborts - 1), 5.0))

    def _retries_exhausted(self, what: str, error: KafkaError, next_offsets: NextOffsets) -> ClientsBroken:
        return ClientsBroken(
            f"worker {self.worker_id}: the {what} of the transaction for {describe_offsets(next_offsets)} still "
            f"failed after {self.retry_timeout_s:g} s of retries ({error.str()}); whether it landed is unknown. "
            "Nothing is lost: new clients with the same id settle it."
        )

    def _rewind(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Back to the last committed offsets, so the aborted batch is read and scored again."""
        topic_partitions = [TopicPartition(t, p) for t, p in sorted({*partitions, *self._drop_gathered()})]
        try:
            committed_offsets = self.consumer.committed(topic_partitions, timeout=30)
        except KafkaException as error:  # without them the consumer's positions are past uncommitted input
            raise ClientsBroken(
                f"worker {self.worker_id}: cannot read the committed offsets of "
                f"{[f'{p.topic}[{p.partition}]' for p in topic_partitions]} to rewind: {error}"
            ) from error
        for committed in committed_offsets:
            target = committed.offset if committed.offset >= 0 else OFFSET_BEGINNING
            try:
                self.consumer.seek(TopicPartition(committed.topic, committed.partition, target))
            except KafkaException as error:  # revoked meanwhile: its new owner reads it
                logger.info("not rewinding %s[%d]: %s", committed.topic, committed.partition, error)
