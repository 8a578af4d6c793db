"""Fair batch assembly (muse_stream/pipeline/fairness.py): who is paused, when, and what is resumed."""

from __future__ import annotations

import pytest

from muse_stream.pipeline.fairness import CONTENDED_HOLD_S, FairShare

A, B, C = "ns.tenant.a.input", "ns.tenant.b.input", "ns.tenant.c.input"


def records(topic: str, partition: int, n: int) -> list[tuple[str, int]]:
    return [(topic, partition)] * n


def catching_up(topics: set[str]) -> bool:
    """The worker's verdict on a batch of several tenants that all catch up on backlogs: not contended."""
    return False


def test_a_tenant_alone_has_the_whole_batch_and_is_never_paused() -> None:
    fair = FairShare(1000)
    for _ in range(3):  # batch after batch
        assert fair.share == 1000
        assert fair.admit(records(A, 0, 600) + records(A, 1, 400)) == []
        assert fair.close_batch(full=False)[1] == []


def test_a_flooding_tenant_is_paused_at_its_share_once_another_tenant_has_records() -> None:
    fair = FairShare(1000)
    assert fair.admit(records(A, 0, 300) + records(A, 1, 100)) == []  # alone so far
    assert fair.admit(records(B, 0, 2)) == []  # B arrives: shares are now 500 each
    assert fair.share == 500
    # A reaches 500: all of its partitions seen are paused, B's is not.
    assert fair.admit(records(A, 0, 100)) == [(A, 0), (A, 1)]
    assert fair.paused == {(A, 0), (A, 1)}
    # A record of A taken in the same consume call after the pause counts but pauses nothing new.
    assert fair.admit(records(A, 0, 5) + records(B, 0, 3)) == []
    # The batch closes: A is resumed, to be fetched again while the batch is scored.
    assert fair.close_batch(full=False)[1] == [(A, 0), (A, 1)]
    assert fair.paused == frozenset()


def test_a_tenant_active_in_the_last_batch_keeps_its_share_in_the_next() -> None:
    fair = FairShare(900)
    fair.admit(records(A, 0, 10) + records(B, 0, 1) + records(C, 0, 1))
    fair.close_batch(full=False, contended=catching_up)
    # B and C have nothing queued yet in this batch, but had records in the last one: A gets a third.
    assert fair.share == 300
    assert fair.admit(records(A, 0, 299)) == []
    assert fair.admit(records(A, 2, 1)) == [(A, 0), (A, 2)]
    fair.close_batch(full=False, contended=catching_up)
    fair.close_batch(full=False, contended=catching_up)  # an empty batch: nobody active any more
    assert fair.share == 900


def test_a_partition_of_a_full_tenant_seen_after_the_pause_is_paused_too() -> None:
    fair = FairShare(100)
    fair.admit(records(B, 0, 1))
    assert fair.admit(records(A, 0, 60)) == [(A, 0)]
    assert fair.admit(records(A, 3, 1)) == [(A, 3)]
    assert sorted(fair.close_batch(full=False)[1]) == [(A, 0), (A, 3)]


def test_forgotten_partitions_are_neither_resumed_nor_paused_again() -> None:
    fair = FairShare(100)
    fair.admit(records(B, 0, 1))
    assert fair.admit(records(A, 0, 30) + records(A, 1, 30)) == [(A, 0), (A, 1)]
    fair.forget([(A, 1)])  # revoked: another worker owns it now
    assert fair.paused == {(A, 0)}
    assert fair.admit(records(A, 0, 1)) == []
    assert fair.close_batch(full=False)[1] == [(A, 0)]


def test_a_batch_of_one_record_is_a_share_of_one() -> None:
    fair = FairShare(1)
    assert fair.share == 1
    with pytest.raises(ValueError, match="max_batch"):
        FairShare(0)


def test_a_tenant_with_records_waiting_has_a_share_before_any_of_them_is_taken() -> None:
    fair = FairShare(1000)
    fair.waiting({B: 1})  # B's first event sits behind A's flood in librdkafka's queue
    assert fair.admit(records(A, 0, 400)) == []
    assert fair.share == 500
    assert fair.admit(records(A, 0, 100)) == [(A, 0)]  # A is paused: what it prefetched is dropped
    fair.close_batch(full=False)
    assert fair.share == 1000  # the next batch asks again
    assert fair.admit(records(A, 0, 1000)) == []


def test_a_full_batch_has_its_partitions_paused_and_resumed_to_empty_librdkafkas_queue() -> None:
    fair = FairShare(100)
    assert fair.admit(records(A, 0, 60) + records(A, 1, 40)) == []  # alone: never paused while gathering
    assert fair.close_batch(full=True) == ([(A, 0), (A, 1)], [(A, 0), (A, 1)])
    fair.admit(records(B, 0, 1) + records(A, 0, 50))  # A paused at its share (50)
    # A resumed once, not paused twice; B, far from its share, is left alone: its few queued records
    # are not what fills the queue, and dropping them would only delay B.
    assert fair.close_batch(full=True, contended=catching_up) == ([], [(A, 0), (A, 1)])
    fair.admit(records(A, 0, 10))
    assert fair.close_batch(full=False) == ([], [])  # a batch that was not full leaves the queue alone


def test_a_worker_that_owns_one_tenants_partitions_alone_never_cycles_them() -> None:
    """Nobody's records to make room for: dropping and fetching again its prefetch only slows its drain."""
    fair = FairShare(100)
    fair.admit(records(A, 0, 60) + records(A, 1, 40))
    assert fair.close_batch(full=True, owned={A}) == ([], [])
    fair.admit(records(A, 0, 100))
    assert fair.close_batch(full=True, owned={A, B}) == ([(A, 0)], [(A, 0)])  # B may send: cycled as before
    fair.admit(records(A, 0, 100))
    assert fair.close_batch(full=True) == ([(A, 0)], [(A, 0)])  # owned tenants not given: cycled


def test_batches_shrink_to_the_contended_size_while_a_flood_shares_the_worker_with_a_quiet_tenant() -> None:
    fair = FairShare(5000, 1000)
    fair.admit(records(A, 0, 4000))
    assert (fair.limit, fair.share) == (5000, 5000)  # A alone: the whole large batch
    fair.admit(records(B, 0, 3))
    assert fair.share == 2500  # B too: half each of the batch being gathered
    fair.admit(records(A, 1, 100))
    fair.close_batch(full=True)
    # A flood beside a tenant served live (the default `contended` says so of any two tenants):
    # the next batches are small, half each.
    assert (fair.limit, fair.share) == (1000, 500)
    assert fair.admit(records(A, 0, 500)) == [(A, 0), (A, 1)]  # every partition of A seen
    fair.admit(records(B, 0, 2))
    fair.close_batch(full=False)
    assert fair.limit == 1000  # still flood and quiet tenant


def test_a_batch_of_the_flood_alone_keeps_batches_small_until_the_hold_ends() -> None:
    now = [100.0]
    fair = FairShare(5000, 1000, clock=lambda: now[0])
    fair.admit(records(A, 0, 900) + records(B, 0, 3))
    fair.close_batch(full=True)
    assert fair.limit == 1000
    # B's next records were not fetched in time for this batch: it holds A alone. Were the next
    # batch large, B's records in it would wait for 5,000 of A's.
    now[0] += 0.05
    fair.admit(records(A, 0, 1000))
    fair.close_batch(full=True)
    assert fair.limit == 1000
    now[0] += CONTENDED_HOLD_S - 0.1  # still within the hold of the batch that held A and B
    assert fair.limit == 1000
    now[0] += 0.1
    fair.admit(records(A, 0, 7))  # A alone for longer than the hold: the batches grow again
    fair.close_batch(full=False)
    assert fair.limit == 1000
    fair.admit(records(A, 0, 1000))
    fair.close_batch(full=True)
    assert fair.limit == 2000


def test_tenants_that_all_have_backlogs_keep_the_large_batch() -> None:
    fair = FairShare(5000, 1000)
    # Both catching up on backlogs: nobody is waiting on anybody.
    asked: list[set[str]] = []

    def catching_up(topics: set[str]) -> bool:
        asked.append(topics)
        return False

    fair.admit(records(A, 0, 2500) + records(B, 0, 40))
    fair.close_batch(full=True, contended=catching_up)
    assert fair.limit == 5000 and asked == [{A, B}]


def test_the_contended_size_never_exceeds_the_batch_and_must_be_positive() -> None:
    fair = FairShare(800, 5000)
    fair.admit(records(A, 0, 600) + records(B, 0, 1))
    fair.close_batch(full=False)
    assert fair.limit == 800
    with pytest.raises(ValueError, match="at least 1"):
        FairShare(800, 0)


def test_while_contended_the_live_tenant_keeps_its_share_when_its_records_are_not_fetched_yet() -> None:
    now = [100.0]
    fair = FairShare(5000, 1000, clock=lambda: now[0])
    fair.admit(records(A, 0, 700) + records(B, 0, 20))
    fair.close_batch(full=True)  # a flood beside a live tenant: contended
    fair.admit(records(A, 0, 1000))  # B's next records sit behind A's in librdkafka's queue
    fair.close_batch(full=True)
    now[0] += 0.03
    # B had no record in the last batch, but is still one of the contended tenants: A gets half the
    # batch and is paused there, so that B's queued records come into this batch, not five batches on.
    assert (fair.limit, fair.share) == (1000, 500)
    assert fair.admit(records(A, 0, 499)) == []
    assert fair.admit(records(A, 0, 1)) == [(A, 0)]
    fair.close_batch(full=False)
    now[0] += CONTENDED_HOLD_S  # A alone for longer than the hold: the whole batch is A's again
    fair.close_batch(full=False)
    assert (fair.limit, fair.share) == (1000, 1000)


def test_a_backlog_that_appears_while_the_worker_keeps_up_comes_in_small_batches_first() -> None:
    """Only a batch's close shows whether a new backlog is a flood beside a tenant served live: its
    first batch is small, and the batches double while nobody else has records."""
    fair = FairShare(5000, 1000)
    assert fair.limit == 5000  # a fresh worker: no sign of live traffic
    fair.admit(records(B, 0, 8))
    fair.close_batch(full=False)  # B served live, eight records a batch
    assert fair.limit == 1000
    fair.admit(records(A, 0, 1000))  # A's flood begins; B's next records are not fetched yet
    fair.close_batch(full=True)
    assert fair.limit == 2000
    fair.admit(records(A, 0, 2000))
    fair.close_batch(full=True)
    assert fair.limit == 4000
    fair.admit(records(A, 0, 1999) + records(B, 0, 1))  # B's records come in: contended, small again
    fair.close_batch(full=False)
    assert fair.limit == 1000
    fair.admit(records(A, 0, 500))
    fair.admit(records(B, 0, 8))
    fair.close_batch(full=False)
    assert fair.limit == 1000


def test_many_tenants_share_a_batch_in_at_most_ten_shares() -> None:
    """500 backlogged tenants each paused after 10 records had librdkafka drop and fetch again what it
    prefetched of them, batch after batch; a share is never less than a tenth of the batch."""
    fair = FairShare(5000)
    tenants = [f"ns.tenant.t{i:03d}.input" for i in range(500)]
    fair.waiting(dict.fromkeys(tenants, 400))  # 200,000 events over 500 tenants
    assert fair.share == 500
    assert fair.admit([(t, 0) for t in tenants[:100] for _ in range(400)]) == []  # none reached its share
    assert fair.admit(records(tenants[0], 0, 100)) == [(tenants[0], 0)]
    few = FairShare(5000)
    few.waiting(dict.fromkeys(tenants[:5], 400))
    assert few.share == 1000  # ten tenants or fewer: the batch over them, as before


def test_tenants_that_all_catch_up_on_backlogs_larger_than_their_shares_are_never_paused() -> None:
    """Nobody's records wait behind them: pausing one would only make librdkafka drop and fetch again
    what it prefetched of it (two such tenants drained at a third to two thirds of one tenant's rate)."""
    fair = FairShare(1000)
    fair.waiting({A: 50_000, B: 50_000})
    assert fair.admit(records(A, 0, 800) + records(B, 0, 200)) == []  # A past its share (500): not paused
    assert fair.close_batch(full=True, owned={A, B}) == ([], [])  # nor cycled
    fair.waiting({A: 49_200, B: 300})  # B is down to less than a share: A is paused at its own again
    assert fair.admit(records(A, 0, 500)) == [(A, 0)]
    fair.close_batch(full=True)
    fair.waiting({A: 48_700, B: 49_800, C: 3})  # C is served live: the backlogs are paused at their shares
    assert fair.admit(records(A, 0, 333) + records(B, 0, 333)) == [(A, 0), (B, 0)]


def test_backlogs_are_still_cycled_while_the_worker_owns_a_tenant_that_has_sent_nothing_lately() -> None:
    """C's first records get no position to be counted by: only the cycle brings them in from behind
    the backlogs' prefetch (tests/integration/test_fairness.py waited 7,295 records of A without it)."""
    fair = FairShare(1000)
    fair.waiting({A: 50_000, B: 50_000})
    assert fair.admit(records(A, 0, 500) + records(B, 0, 500)) == []
    assert fair.close_batch(full=True, owned={A, B, C}) == ([(A, 0), (B, 0)], [(A, 0), (B, 0)])


def test_no_call_takes_a_tenant_past_its_share_nor_a_tenant_not_seen_yet_past_its_own() -> None:
    """A flood ahead of a live tenant in librdkafka's queue: taking a whole share a call gave it 488
    records in one call, and 988 of the batch's 1,000 in the next, before it was paused."""
    fair = FairShare(5000, 1000)
    fair.admit(records(B, 0, 8))
    fair.close_batch(full=False)  # B served live; its batches were small
    assert (fair.limit, fair.share) == (1000, 1000)
    assert fair.take == 500  # a tenant not in the batch yet (A's flood) would share it with B
    fair.admit(records(A, 0, 440) + records(B, 0, 12))
    assert fair.take == 60  # what fills A's share, and no more
    assert fair.admit(records(A, 0, 60)) == [(A, 0)]
    assert fair.take == 333  # a third tenant's share, were one to come in (B's room is 488)
    fair.admit(records(B, 0, 40))
    fair.close_batch(full=False)


def test_a_tenant_alone_or_a_few_records_short_of_its_share_is_not_taken_one_record_at_a_time() -> None:
    fair = FairShare(5000, 1000)
    assert fair.take == 5000  # nobody in the batch nor lately: the first tenant may fill it
    fair.admit(records(A, 0, 2500))
    assert fair.take == 2500  # A alone: what a tenant not seen yet may bring
    fair.close_batch(full=False, owned={A})
    fair.waiting({A: 9000, B: 9000})
    fair.admit(records(A, 0, 2499) + records(B, 0, 1))  # A one record short of its share, B's records next
    assert fair.take == 250  # a tenth of a share a call: A at most that past its share
    fair.admit(records(B, 0, 250))
    assert fair.take == 250
