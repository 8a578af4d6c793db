"""A Jepsen-style fault schedule for `muse bench soak`: which fault, when, against whom. Pure: the
soak runner injects what this plans, and the plan is reproducible from its seed."""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass


class FaultKind(str, enum.Enum):
    WORKER_KILL = "worker-kill"  # SIGKILL a worker, start it again (same id) a moment later
    WORKER_PAUSE = "worker-pause"  # SIGSTOP a worker past its session and transaction timeouts: a zombie
    BROKER_KILL = "broker-kill"  # SIGKILL a node, start it again
    BROKER_PAUSE = "broker-pause"  # SIGSTOP a node for a while
    ROLLING_RESTART = "rolling-restart"  # restart every node in turn, waiting for in-sync replicas between
    CUT_CONNECTIONS = "cut-connections"  # abort a worker's TCP connections to the brokers
    CONFIG_CHANGE = "config-change"  # publish a new config version (a new predictor goes live)


ALL_FAULTS: tuple[FaultKind, ...] = tuple(FaultKind)


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the soak's start
    kind: FaultKind
    target: int  # worker index or node id (1-based); 0 where there is none
    hold_s: float  # how long a pause lasts or a killed process stays down

    def describe(self) -> str:
        who = {
            FaultKind.WORKER_KILL: "worker",
            FaultKind.WORKER_PAUSE: "worker",
            FaultKind.CUT_CONNECTIONS: "worker",
            FaultKind.BROKER_KILL: "node",
            FaultKind.BROKER_PAUSE: "node",
        }.get(self.kind)
        target = f" {who} {self.target}" if who else ""
        hold = f" for {self.hold_s:.0f} s" if self.hold_s else ""
        return f"{self.kind.value}{target}{hold}"


def parse_faults(text: str) -> tuple[FaultKind, ...]:
    """``all``, ``none`` or a comma-separated list of fault names."""
    if text == "all":
        return ALL_FAULTS
    if text in ("", "none"):
        return ()
    kinds = []
    for name in text.split(","):
        try:
            kinds.append(FaultKind(name.strip()))
        except ValueError:
            raise ValueError(
                f"unknown fault {name.strip()!r}; choose from all, none, {', '.join(k.value for k in FaultKind)}"
            ) from None
    return tuple(kinds)


def fault_schedule(
    seed: int,
    duration_s: float,
    kinds: Sequence[FaultKind],
    *,
    workers: int,
    nodes: int,
    mean_gap_s: float,
    pause_s: float,
    warmup_s: float = 10.0,
    cooldown_s: float = 20.0,
) -> list[Fault]:
    """Faults at random times (exponential gaps of ``mean_gap_s``, each begun only once the previous
    one is over) between ``warmup_s`` and ``duration_s - cooldown_s``, so the run starts healthy and
    ends with time to drain. Pauses last ``pause_s`` (set it past the session and transaction
    timeouts to make zombies). Broker faults need a cluster that survives a node down (3 nodes)
    or a restart (1 node: kills only, and pauses shorter than the clients' patience)."""
    if not kinds:
        return []
    rng = random.Random(seed)
    faults: list[Fault] = []
    now = warmup_s
    end = duration_s - cooldown_s
    while True:
        now += rng.expovariate(1 / mean_gap_s)
        kind = rng.choice(list(kinds))
        target = 0
        hold = 0.0
        if kind in (FaultKind.WORKER_KILL, FaultKind.WORKER_PAUSE, FaultKind.CUT_CONNECTIONS):
            target = rng.randint(1, workers)
        elif kind in (FaultKind.BROKER_KILL, FaultKind.BROKER_PAUSE):
            target = rng.randint(1, nodes)
        if kind in (FaultKind.WORKER_PAUSE, FaultKind.BROKER_PAUSE):
            hold = pause_s
        elif kind in (FaultKind.WORKER_KILL, FaultKind.BROKER_KILL):
            hold = rng.uniform(1.0, 5.0)
        if now + hold > end:
            return faults
        faults.append(Fault(round(now, 1), kind, target, round(hold, 1)))
        now += hold
