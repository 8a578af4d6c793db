"""The soak's fault schedule and verifier: pure, no broker."""

from __future__ import annotations

import pytest

from muse_stream.bench.exactly_once import Outcome, verify
from muse_stream.bench.faults import ALL_FAULTS, Fault, FaultKind, fault_schedule, parse_faults
from muse_stream.bench.soak import verdict_table


def test_a_schedule_is_reproducible_spaced_and_inside_the_run() -> None:
    plan = fault_schedule(7, 600, ALL_FAULTS, workers=2, nodes=3, mean_gap_s=10, pause_s=15)
    assert plan == fault_schedule(7, 600, ALL_FAULTS, workers=2, nodes=3, mean_gap_s=10, pause_s=15)
    assert len(plan) >= 15 and {f.kind for f in plan} == set(ALL_FAULTS)
    assert all(10 <= f.at_s and f.at_s + f.hold_s <= 580 for f in plan)
    for before, after in zip(plan, plan[1:]):
        assert after.at_s >= before.at_s + before.hold_s  # one fault at a time
    for fault in plan:
        if fault.kind in (FaultKind.WORKER_KILL, FaultKind.WORKER_PAUSE, FaultKind.CUT_CONNECTIONS):
            assert 1 <= fault.target <= 2
        if fault.kind in (FaultKind.BROKER_KILL, FaultKind.BROKER_PAUSE):
            assert 1 <= fault.target <= 3
        if fault.kind in (FaultKind.WORKER_PAUSE, FaultKind.BROKER_PAUSE):
            assert fault.hold_s == 15


def test_fault_names_parse_and_a_wrong_one_is_named() -> None:
    assert parse_faults("all") == ALL_FAULTS and parse_faults("none") == ()
    assert parse_faults("worker-kill,config-change") == (FaultKind.WORKER_KILL, FaultKind.CONFIG_CHANGE)
    with pytest.raises(ValueError, match="unknown fault 'broker-nap'"):
        parse_faults("broker-nap")


def _out(event_id: str, version: int = 1, partition: int = 0, topic: str = "ns.tenant.a.output") -> Outcome:
    return Outcome(topic, partition, event_id, version)


def test_exactly_once_counts_results_and_dead_letters_as_outcomes() -> None:
    verdict = verify(["e1", "e2", "e3"], [_out("e1"), _out("e2"), _out("e3", topic="ns.tenant.a.dlq")])
    assert verdict.ok and (verdict.produced, verdict.results, verdict.dead_letters) == (3, 2, 1)


def test_lost_duplicated_and_unknown_events_are_reported() -> None:
    verdict = verify(["e1", "e2", "e3"], [_out("e1"), _out("e1"), _out("e2"), _out("x9")])
    assert verdict.lost == ["e3"] and verdict.duplicated == {"e1": 2} and verdict.unexpected == ["x9"]
    assert not verdict.ok


def test_a_config_version_going_back_on_one_partition_is_a_regression_but_not_across_partitions() -> None:
    verdict = verify(["e1", "e2", "e3", "e4"], [_out("e1", 1), _out("e2", 2), _out("e3", 1, partition=1), _out("e4", 1)])
    assert verdict.regressions == ["ns.tenant.a.output[0] e4: config 1 after 2"]


def test_the_table_names_every_figure_and_fault() -> None:
    verdict = verify(["e1"], [_out("e1")])
    table = verdict_table(verdict, [(12.5, Fault(12.5, FaultKind.BROKER_KILL, 2, 3.0))], seconds=60)
    for text in (
        "events produced",
        "lost",
        "duplicated",
        "config version regressions",
        "broker-kill node 2",
        "t=   12.5 s",
        "OK, exactly once",
    ):
        assert text in table
