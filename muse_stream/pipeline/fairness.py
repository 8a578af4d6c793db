"""Fair batch assembly: one tenant's backlog must not starve the others. Pure, no Kafka client.

librdkafka prefetches every assigned partition into one queue, in the order its fetch responses
arrive, and stops fetching all of them while that queue is full. Behind a flooding tenant's backlog
(the worker's queue held up to 100,000 records) another tenant's event was not even fetched until
the worker had scored everything queued before it: seconds, at a worker's rate.

So each tenant (each input topic) gets a share of a batch: the batch's capacity over the tenants
that had records in it or in the previous batch, or that have records waiting (a saturated worker
looks at its partitions' positions against the high watermarks of their last fetch, so a quiet
tenant's first event counts even while it sits behind a flood in librdkafka's queue), and never
less than a tenth of the batch (``MAX_SHARES``): hundreds of tenants catching up would otherwise
each be paused after a few records, their prefetch dropped and fetched again, batch after batch.
While a batch is gathered, a tenant that has filled its share has its partitions paused: librdkafka drops
what it prefetched of them (and fetches them again from the offset after the last record the
worker took when they are resumed), so what other tenants have queued behind them comes into the
same batch. When the batch closes, the paused partitions are resumed at once, to be fetched again
while the batch is scored. A batch that closes full (the worker is saturated) also has the
partitions of every tenant that filled its share paused and resumed: that empties the queue of the
records that fill it, so the next fetch brings every partition's new records, a quiet tenant's
first event among them, instead of waiting for the flood's prefetch to drain. A tenant far from its
share is left alone: its few queued records are not what fills the queue, and each pause costs
librdkafka deliveries (``notes/experiments/pause_gaps.py``: a plain consumer that paused and resumed
its partitions after every batch of 1,000 under a flood went 180-237 ms without a delivery now and
then; without the pauses, never over 150 ms). A worker that owns the partitions of one tenant only
never pauses them: there is nobody to make room for, and dropping its prefetch at every full batch
cost the pass-through worker's drain 30% of its rate (``notes/performance.md``: six runs of
``muse bench throughput --skip-faust --skip-quix`` each, before and after, alternated).

While a flood shares the worker with a tenant served live (the worker's test: in the last batch,
one tenant still had records waiting and another tenant's records were all under a second old), a
batch is also smaller: at most ``contended_batch`` records (the worker's default is 1,000, against
5,000). The live tenant's event waits for the batch being scored and then for its own, so the time
a flood makes it wait is about two transactions of that size. This lasts for ``CONTENDED_HOLD_S``
after the last batch that showed the contention, and meanwhile the tenants of that batch keep their
shares even when a batch holds none of their records. A batch of the flood alone (the live
tenant's next records not fetched yet, or a quota letting the flood through in bursts about a
second apart) then neither makes the next batch a large one nor gives the flood the whole batch,
which left the live tenant's records behind the flood's in librdkafka's queue for five batches.
Only a batch's close shows the contention, so a worker that was keeping up (small batches) takes a
new backlog at most ``contended_batch`` records at first, and twice the last batch after that, up to
``max_batch``: a first batch of 5,000 of a flood's records made the live tenant's next ones wait for
its scoring (150 ms under `muse bench noisy-neighbour`'s quota, when the quota let a burst through).
A tenant alone, and tenants catching up on backlogs (their results are late already, and
throughput is what they need) keep the large batches. Tenants that all have more records waiting than
their shares, with nobody served live beside them, are not paused at all: no one's records wait behind
them, and a pause would only make librdkafka drop what it prefetched of them and fetch it again (a
worker whose last batch was full or paused a tenant counts, before each batch, the records waiting
per tenant from librdkafka's cached high watermarks).

Pausing loses nothing: records the worker has taken are in its batch, and librdkafka resumes a
partition from the offset after the last record it handed to the worker (librdkafka >= 2.1 does;
before, a resumed partition could skip records).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

Partition = tuple[str, int]  # (topic, partition); a topic is one tenant's input
# A batch is split into at most this many shares, however many tenants are active. Finer shares
# paused each of 500 backlogged tenants after a few records, and what librdkafka had prefetched of
# them was dropped and fetched again, over and over: their drain ran at 0.30x one tenant's rate
# against 0.62-0.76x without fair shares (`muse bench tenants --tenants 1,500`, notes/performance.md).
MAX_SHARES = 10
# A call to take records takes at least a share over this: a tenant may end up that much past its
# share, but one a few records short of it no longer has the queue taken a record a call while other
# tenants' records come first (two backlogs, one 1 record short: 2,502 calls for one batch).
MAX_CALLS_PER_SHARE = 10
# How long batches stay small after the last batch that held a flood beside a tenant served live:
# longer than the second between the bursts a quota lets a flood through in.
CONTENDED_HOLD_S = 5.0


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
        self._last_size = max_batch  # records in the previous batch (a fresh worker: no sign of live traffic)
        self._waiting: dict[str, int] = {}  # records not yet taken per topic (those with any), as last looked
        self._paused: set[Partition] = set()
        self._taken: set[Partition] = set()  # partitions with records in the batch being gathered
        self._clock = clock
        self._contended_until = float("-inf")  # small batches until then (CONTENDED_HOLD_S)
        self._contended_tenants: frozenset[str] = frozenset()  # the tenants of the last contended batch

    def _holding(self) -> bool:
        """Within CONTENDED_HOLD_S of the last batch that held a flood beside a tenant served live."""
        return self._clock() < self._contended_until

    def _recent(self) -> frozenset[str]:
        """Tenants with records in the last batch or waiting, and, while contended, the tenants of the
        last contended batch: a live tenant whose records sit behind the flood's in librdkafka's queue
        keeps its share, so the flood is paused at its own and the live tenant's records come in."""
        recent = self._last_batch | frozenset(self._waiting)
        return recent | self._contended_tenants if self._holding() else recent

    @property
    def active(self) -> int:
        """Tenants with records in this batch or the last one, or with records waiting (and, while
        contended, the tenants of the last contended batch)."""
        return len(self._recent() | self._counts.keys())

    @property
    def limit(self) -> int:
        """Records this batch may hold: ``contended_batch`` while a flood shares the worker with a
        tenant served live (and for CONTENDED_HOLD_S after it last showed); else twice the last
        batch, from ``contended_batch`` up to ``max_batch``. A worker that was keeping up does not
        know yet whether a backlog that appears now is a flood beside a tenant served live: only a
        batch's close shows that, and a first batch of 5,000 under a flood kept the live tenant's
        next records waiting 150 ms for it to be scored."""
        if self._holding():
            return self.contended_batch
        return min(self.max_batch, max(self.contended_batch, 2 * self._last_size))

    @property
    def share(self) -> int:
        """Records a tenant may bring into this batch: the batch over the active tenants, and never
        less than a tenth of it (MAX_SHARES)."""
        return self._share_among(self.active)

    def _share_among(self, tenants: int) -> int:
        return max(1, self.limit // min(max(tenants, 1), MAX_SHARES))

    @property
    def take(self) -> int:
        """Records to take from librdkafka's queue in one go: no more than any tenant below its share
        may still bring into the batch, nor than the share of a tenant not in it yet, and never less
        than a share over MAX_CALLS_PER_SHARE. A tenant is paused once it has its share, so a call's
        records past that overshoot it: taking a whole share a call, a flood ahead of a live tenant
        in the queue had 488 records after one call and 988 of the batch's 1,000 after the next."""
        active = self.active
        share = self._share_among(active)
        rooms = (share - count for count in self._counts.values() if count < share)
        return max(share // MAX_CALLS_PER_SHARE, 1, min([self._share_among(active + 1), *rooms]))

    @property
    def paused(self) -> frozenset[Partition]:
        return frozenset(self._paused)

    def waiting(self, records_waiting: dict[str, int]) -> None:
        """The tenants with records waiting to be taken, and how many, for the batch about to be gathered."""
        self._waiting = dict(records_waiting)

    def _catching_up(self) -> bool:
        """Every active tenant has more records waiting than its share, and no flood shares the worker
        with a tenant served live: they all catch up on backlogs, and nobody's records wait behind
        them. Pausing one would only drop what librdkafka prefetched of it: two such tenants drained
        at 0.25-0.70x one tenant's rate, each share fetched again after every pause."""
        if self._holding() or not self._waiting:
            return False
        share, waiting = self.share, self._waiting
        return all(waiting.get(topic, 0) >= share for topic in self._recent() | self._counts.keys())

    def _no_one_to_make_room_for(self, owned: set[str]) -> bool:
        """The worker owns one tenant's partitions only, or every tenant it owns is catching up. A
        tenant it owns that has sent nothing lately has no position yet to count its first records by:
        emptying the queue at a full batch is what brings them in from behind the backlogs' prefetch."""
        if len(owned) == 1:
            return True
        return not owned - self._recent() - self._counts.keys() and self._catching_up()

    def admit(self, partitions: Iterable[Partition]) -> list[Partition]:
        """Count records just taken into the batch (one (topic, partition) per record); the
        partitions of tenants that have now filled their share and are not paused yet, to pause."""
        for (topic, partition), count in Counter(partitions).items():  # counted in C, looped per partition
            self._counts[topic] += count
            self._partitions[topic].add(partition)
            self._taken.add((topic, partition))
        if len(self._counts) == 1 and not self._recent() - self._counts.keys():
            return []  # one tenant alone: the whole batch is its share
        if self._catching_up():
            return []
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

    def close_batch(
        self,
        *,
        full: bool,
        contended: Callable[[set[str]], bool] = bool,
        owned: Iterable[str] | None = None,
    ) -> tuple[list[Partition], list[Partition]]:
        """The batch is complete: start counting the next one. The partitions to pause (a ``full``
        batch's, to empty librdkafka's queue of them, unless the tenants the worker ``owns`` leave no
        one to make room for; not given: cycled) and then to resume. ``contended`` is asked,
        when the batch held more than one tenant, whether those tenants are a flood beside a tenant
        served live: then the batches of the next CONTENDED_HOLD_S are ``contended_batch`` records at
        most. A batch of one tenant leaves that as it is; one of several judged not contended ends it."""
        share = self.share
        cycle = full and not (owned is not None and self._no_one_to_make_room_for(set(owned)))
        cycled = sorted(p for p in self._taken - self._paused if self._counts[p[0]] >= share) if cycle else []
        resumed = sorted(self._paused | set(cycled))
        if len(self._counts) > 1:
            if contended(set(self._counts)):
                self._contended_until = self._clock() + CONTENDED_HOLD_S
                self._contended_tenants = frozenset(self._counts)
            else:
                self._contended_until = float("-inf")
        self._last_batch = frozenset(self._counts)
        self._last_size = sum(self._counts.values())
        self._waiting = {}
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
