"""Exactly-once, judged from what was produced and what the output and DLQ topics hold (read
read_committed, in offset order per partition): how many events were lost or duplicated, which
outcomes were scored by a config version older than one already seen on their partition, and which
results were not scored by the live predictor of the version they name (a mix of versions). Pure:
a benchmark reads, this judges. ``muse bench soak`` and ``muse bench promotion`` both judge with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    """One record of an output or DLQ topic. ``route`` (tenant/intent) and ``predictor_id`` are a
    result's, when the reader kept them; a dead letter has neither."""

    topic: str
    partition: int
    event_id: str
    config_version: int
    route: str | None = None
    predictor_id: str | None = None

    @property
    def dead_letter(self) -> bool:
        return self.topic.endswith(".dlq")  # topics.TopicNames.dlq_topic


@dataclass
class Verdict:
    produced: int
    results: int = 0
    dead_letters: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # outcomes of events never produced
    regressions: list[str] = field(default_factory=list)  # a version older than one seen before on the partition
    mixed: list[str] = field(default_factory=list)  # a result not from its version's live predictor

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.regressions or self.mixed)

    def figures(self) -> dict[str, int]:
        return {
            "produced": self.produced,
            "results": self.results,
            "dead_letters": self.dead_letters,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "config_regressions": len(self.regressions),
            "mixed": len(self.mixed),
        }

    def render(self) -> list[str]:
        lines = [
            f"exactly once over {self.produced:,} events produced: {self.results:,} results, {self.dead_letters:,} dead letters; "
            f"lost {len(self.lost):,}, duplicated {len(self.duplicated):,}, outcomes of unknown events {len(self.unexpected):,}, "
            f"config version going back on a partition {len(self.regressions):,}, results not from their version's "
            f"live predictor {len(self.mixed):,}"
        ]
        for what, items in (
            ("lost", self.lost),
            ("duplicated", list(self.duplicated)),
            ("unknown", self.unexpected),
            ("regressions", self.regressions),
            ("mixed", self.mixed),
        ):
            if items:
                lines.append(f"  first {what}: {', '.join(items[:5])}")
        return lines


def verify(
    produced_ids: Iterable[str],
    outcomes: Iterable[Outcome],
    live_predictors: Mapping[int, Mapping[str, str]] | None = None,
) -> Verdict:
    """Each produced event id must have exactly one outcome (a result or a dead letter); within a
    partition the config version never goes back; with ``live_predictors`` (version -> route -> live
    predictor id), every result was scored by the live predictor of its route in the version it names."""
    produced = set(produced_ids)
    counts: Counter[str] = Counter()
    newest: dict[tuple[str, int], int] = {}
    verdict = Verdict(produced=len(produced))
    for outcome in outcomes:
        counts[outcome.event_id] += 1
        if outcome.dead_letter:
            verdict.dead_letters += 1
        else:
            verdict.results += 1
        where = (outcome.topic, outcome.partition)
        seen = newest.get(where, 0)
        if outcome.config_version < seen:
            verdict.regressions.append(
                f"{outcome.topic}[{outcome.partition}] {outcome.event_id}: config {outcome.config_version} after {seen}"
            )
        else:
            newest[where] = outcome.config_version
        if live_predictors is not None and not outcome.dead_letter and outcome.route is not None:
            expected = live_predictors.get(outcome.config_version, {}).get(outcome.route)
            if expected != outcome.predictor_id:
                verdict.mixed.append(
                    f"{outcome.event_id}: {outcome.route} scored by {(outcome.predictor_id or '')[:12]} under version "
                    f"{outcome.config_version}, whose live predictor is {(expected or 'none')[:12]}"
                )
    verdict.lost = sorted(produced - counts.keys())
    verdict.duplicated = {event_id: n for event_id, n in counts.items() if n > 1}
    verdict.unexpected = sorted(counts.keys() - produced)
    return verdict
