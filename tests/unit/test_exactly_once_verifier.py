"""The exactly-once verifier of `muse bench promotion`: what it counts as lost, duplicated, a config
version going back on a partition, and a result scored by a predictor its version does not route to."""

from __future__ import annotations

from muse_stream.bench.exactly_once import Outcome, verify

OUT = "ns.tenant.bank-a.output"
DLQ = "ns.tenant.bank-a.dlq"
ROUTE = "bank-a/card-fraud"
LIVE = {1: {ROUTE: "old"}, 2: {ROUTE: "new"}}


def result(event_id: str, version: int, predictor: str, partition: int = 0) -> Outcome:
    return Outcome(OUT, partition, event_id, version, ROUTE, predictor)


def test_one_outcome_per_event_through_a_version_change_is_exactly_once() -> None:
    outcomes = [result("e0", 1, "old"), result("e1", 1, "old", 1), result("e2", 2, "new"), Outcome(DLQ, 0, "e3", 2)]
    verdict = verify(["e0", "e1", "e2", "e3"], outcomes, LIVE)
    assert verdict.ok
    assert (verdict.produced, verdict.results, verdict.dead_letters) == (4, 3, 1)


def test_lost_duplicated_and_unknown_events_are_named() -> None:
    verdict = verify(["e0", "e1", "e2"], [result("e0", 1, "old"), result("e0", 1, "old"), result("x9", 1, "old")], LIVE)
    assert not verdict.ok
    assert verdict.lost == ["e1", "e2"] and verdict.duplicated == {"e0": 2} and verdict.unexpected == ["x9"]
    assert verdict.figures()["lost"] == 2 and verdict.figures()["duplicated"] == 1


def test_a_version_going_back_on_a_partition_is_a_regression_but_not_across_partitions() -> None:
    outcomes = [result("e0", 2, "new", 0), result("e1", 1, "old", 1), result("e2", 1, "old", 0)]
    verdict = verify(["e0", "e1", "e2"], outcomes, LIVE)
    assert verdict.regressions == [f"{OUT}[0] e2: config 1 after 2"]


def test_a_result_not_from_its_versions_live_predictor_is_mixed() -> None:
    verdict = verify(["e0", "e1"], [result("e0", 1, "old"), result("e1", 2, "old")], LIVE)
    assert len(verdict.mixed) == 1 and verdict.mixed[0].startswith("e1: bank-a/card-fraud scored by old under version 2")
    assert not verdict.ok
    assert verify(["e0", "e1"], [result("e0", 1, "old"), result("e1", 2, "old")]).ok  # without the routing, not judged
