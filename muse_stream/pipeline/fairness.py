"""Fair batch assembly: one tenant's backlog must not starve the others. Pure, no Kafka client.

librdkafka prefetches every assigned partition into one queue, in the order its fetch responses
arrive, and stops fetching all of them while that queue is full. Behind a flooding tenant's backlog
(the worker's queue held up to 100,000 records) another tenant's event was not even fetched until
the worker had scored everything queued before it: seconds, at a worker's rate.

So each tenant (each input topic) gets a share of a batch: the batch's capacity over the tenants
that had records in it or in the previous batch, or that have records waiting (a saturated worker
looks at its partitions' positions against the high watermarks of their last fetch, so a quiet
tenant's first event counts even while it sits behind a flood in librdkafka's queue). While a batch is gathered, a tenant that has
filled its share has its partitions paused: librdkafka drops what it prefetched of them (and
fetches them again from the offset after the last record the worker took when they are resumed),
so what other tenants have queued behind them comes into the same batch. When the batch closes,
the paused partitions are resumed at once, to be fetched again while the batch is scored. A batch
that closes full (the worker is saturated) has its partitions paused and resumed too: that empties
the queue, so the next fetch brings every partition's new records, a quiet tenant's first event
among them, instead of waiting for the flood's prefetch to drain. A tenant alone is paused only
then, and the worker's consumer prefetches about two batches (``clients/settings.py``), so what is
dropped and fetched again is small.

While a flood shares the worker with a tenant served live (the worker's test: in the last batch,
one tenant still had records waiting and another tenant's records were all under a second old), a
batch is also smaller: at most ``contended_batch`` records (the worker's default is 1,000, against
5,000). The live tenant's event waits for the batch being scored and then for its own, so the time
a flood makes it wait is about two transactions of that size. The small batches last for
``CONTENDED_HOLD_S`` after the last batch that showed the contention: a batch of the flood alone
(the live tenant's next records not fetched yet) does not end it, or the next batch, the live
tenant's records in it, would be a large one (seen under a flood: 5,000-record batches holding
events 200-600 ms old). A tenant alone, and tenants catching up on backlogs (their results are late
already, and throughput is what they need) keep the large batches.

Pausing loses nothing: records the worker has taken are in its batch, and librdkafka resumes a
partition from the offset after the last record it handed to the worker (librdkafka >= 2.1 does;
before, a resumed partition could skip records).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

Partition = tuple[str, int]  # (topic, partition); a topic is one tenant's input
# How long batches stay small after the last batch that held a flood beside a tenant served live.
CONTENDED_HOLD_S = 1.0


class FairShare:
    """The per-tenant counts of the batch being gathered, and which partitions to pause and resume."""

    def __init__(
        self, max_batch: int, contended_batch: int | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_batch < 1 or (contended_batch is not None and contended_batch < 1):
            raise ValueError(f"max_batch and contended_batch must be at least 1, got {max_batch} and {contended_batch}")
        self.max_batch = max_batch
        self.contended_batch = max_batch if contended_batch is None else min(contended_batch, max_batch)
        self._counts: Counter[str] = Counter()  # records per topic in the batch being gathered
        self._partitions: defaultdict[str, set[int]] = defaultdict(set)  # partitions seen per topic
        self._last_batch: frozenset[str] = frozenset()  # topics with records in the previous batch
        self._waiting: frozenset[str] = frozenset()  # topics with records not yet taken, as last looked
        self._paused: set[Partition] = set()
        self._taken: set[Partition] = set()  # partitions with records in the batch being gathered
        self._clock = clock
        self._contended_until = float("-inf")  # small batches until then (CONTENDED_HOLD_S)

    @property
    def active(self) -> int:
        """Tenants with records in this batch or the last one, or with records waiting."""
        return len(self._last_batch | self._waiting | self._counts.keys())

    @property
    def limit(self) -> int:
        """Records this batch may hold: ``contended_batch`` while a flood shares the worker with a
        tenant served live (and for CONTENDED_HOLD_S after it last showed), else ``max_batch``."""
        return self.contended_batch if self._clock() < self._contended_until else self.max_batch

    @property
    def share(self) -> int:
        """Records a tenant may bring into this batch: the batch over the active tenants."""
        return max(1, self.limit // max(self.active, 1))

    @property
    def paused(self) -> frozenset[Partition]:
        return frozenset(self._paused)

    def waiting(self, topics: Iterable[str]) -> None:
        """The tenants with records waiting to be taken, for the batch about to be gathered."""
        self._waiting = frozenset(topics)

    def admit(self, partitions: Iterable[Partition]) -> list[Partition]:
        """Count records just taken into the batch (one (topic, partition) per record); the
        partitions of tenants that have now filled their share and are not paused yet, to pause."""
        for (topic, partition), count in Counter(partitions).items():  # counted in C, looped per partition
            self._counts[topic] += count
            self._partitions[topic].add(partition)
            self._taken.add((topic, partition))
        if len(self._counts) == 1 and not (self._last_batch | self._waiting) - self._counts.keys():
            return []  # one tenant alone: the whole batch is its share
        share = self.share
        full = sorted(
            (topic, partition)
            for topic, count in self._counts.items()
            if count >= share
            for partition in self._partitions[topic]
            if (topic, partition) not in self._paused
        )
        self._paused.update(full)
        return full

    def close_batch(self, *, full: bool, contended: Callable[[set[str]], bool] = bool) -> tuple[list[Partition], list[Partition]]:
        """The batch is complete: start counting the next one. The partitions to pause (a ``full``
        batch's, to empty librdkafka's queue of them) and then to resume. ``contended`` is asked,
        when the batch held more than one tenant, whether those tenants are a flood beside a tenant
        served live: then the batches of the next CONTENDED_HOLD_S are ``contended_batch`` records at
        most. A batch of one tenant leaves that as it is; one of several judged not contended ends it."""
        cycled = sorted(self._taken - self._paused) if full else []
        resumed = sorted(self._paused | set(cycled))
        if len(self._counts) > 1:
            self._contended_until = self._clock() + CONTENDED_HOLD_S if contended(set(self._counts)) else float("-inf")
        self._last_batch = frozenset(self._counts)
        self._waiting = frozenset()
        self._counts.clear()
        self._taken.clear()
        self._paused = set()
        return cycled, resumed

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions this worker no longer owns (revoked), or whose gathered records were dropped."""
        for topic, partition in partitions:
            self._partitions[topic].discard(partition)
            self._paused.discard((topic, partition))
            self._taken.discard((topic, partition))
