"""The soak's verifier: from what was produced and what the output and DLQ topics hold (read
read_committed), how many events were lost or duplicated, and how many results were scored by a
config version older than one already seen on their partition. Pure: the soak reads, this judges."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from muse_stream.bench.faults import Fault


@dataclass(frozen=True)
class Outcome:
    """One record of an output or DLQ topic, in offset order per (topic, partition)."""

    topic: str
    partition: int
    event_id: str
    config_version: int


@dataclass
class Verdict:
    produced: int
    results: int
    dead_letters: int
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # outcomes of events never produced
    regressions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.regressions)


def verify(produced_ids: Iterable[str], outcomes: Iterable[Outcome]) -> Verdict:
    """Each produced event id must have exactly one outcome (a result or a dead letter); within a
    partition the config version must never go back."""
    produced = set(produced_ids)
    counts: Counter[str] = Counter()
    newest: dict[tuple[str, int], int] = {}
    regressions: list[str] = []
    results = dead_letters = 0
    for outcome in outcomes:
        counts[outcome.event_id] += 1
        if outcome.topic.endswith(".dlq"):
            dead_letters += 1
        else:
            results += 1
        where = (outcome.topic, outcome.partition)
        seen = newest.get(where, 0)
        if outcome.config_version < seen:
            regressions.append(
                f"{outcome.topic}[{outcome.partition}] {outcome.event_id}: config {outcome.config_version} after {seen}"
            )
        else:
            newest[where] = outcome.config_version
    return Verdict(
        produced=len(produced),
        results=results,
        dead_letters=dead_letters,
        lost=sorted(produced - counts.keys()),
        duplicated={event_id: n for event_id, n in counts.items() if n > 1},
        unexpected=sorted(counts.keys() - produced),
        regressions=regressions,
    )


def verdict_table(verdict: Verdict, faults: Sequence[tuple[float, Fault]], *, seconds: float) -> str:
    """The table `muse bench soak` prints: the figures, then each fault injected and when."""
    rows = [
        ("events produced", f"{verdict.produced:,}"),
        ("results", f"{verdict.results:,}"),
        ("dead letters", f"{verdict.dead_letters:,}"),
        ("lost", f"{len(verdict.lost):,}"),
        ("duplicated", f"{len(verdict.duplicated):,}"),
        ("outcomes of unknown events", f"{len(verdict.unexpected):,}"),
        ("config version regressions", f"{len(verdict.regressions):,}"),
        ("faults injected", f"{len(faults)}"),
        ("duration", f"{seconds:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value:>12}" for name, value in rows]
    kinds = Counter(fault.kind.value for _, fault in faults)
    if kinds:
        lines.append("faults by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    lines += [f"  t={at:7.1f} s  {fault.describe()}" for at, fault in faults]
    for what, items in (("lost", verdict.lost), ("duplicated", list(verdict.duplicated)), ("regressions", verdict.regressions)):
        if items:
            lines.append(f"first {what}: {', '.join(items[:5])}")
    lines.append("verdict: " + ("OK, exactly once" if verdict.ok else "FAILED"))
    return "\n".join(lines)
