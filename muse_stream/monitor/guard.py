"""Judging a promotion by its observed alert rates (pure, no Kafka): the analysis of ``muse promote --guard``.

Argo Rollouts' automated analysis is the model: after a promotion, measure; fail fast when a
measurement is out of bounds; succeed when the window ends without one. Here the measurement is
each promoted route's alert rate at each edge of the reference curve (kept with the monitor's
aggregates, monitor/aggregates.py), the bound a relative tolerance around the reference's target,
and nothing is judged on fewer than ``min_events`` results, so a handful of early events cannot
roll a good model back. By default that count comes from the statistics of the rarest edge
(``events_to_judge``): enough results that sampling noise alone stays well inside the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from muse_stream.defaults import DEFAULT_GUARD_TOLERANCE
from muse_stream.monitor.aggregates import alert_rates

Verdict = Literal["pass", "fail", "pending"]
# How many standard deviations of sampling noise must fit inside the tolerance before a route is
# judged: at 3, noise alone fails a well-calibrated route at one edge about 0.3% of the time.
NOISE_SIGMAS = 3.0


def events_to_judge(targets: Mapping[str, float], tolerance: float, *, sigmas: float = NOISE_SIGMAS) -> int:
    """Results a route needs before its rarest edge's observed rate can be told from noise.

    An edge's observed rate over n results has relative standard deviation sqrt((1-p)/(n p)) for
    target p; asking ``sigmas`` of it to fit inside ``tolerance`` gives n >= sigmas^2 (1-p) / (p tol^2).
    With a 5% edge and a 20% tolerance that is 4,275 results; 500 would let noise roll back a good map.
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be above 0, not {tolerance}")
    rates = [p for p in targets.values() if 0 < p < 1]
    if not rates:
        return 1
    return max(math.ceil(sigmas**2 * (1 - p) / (p * tolerance**2)) for p in rates)


@dataclass(frozen=True)
class EdgeCheck:
    threshold: str
    target: float
    observed: float | None

    @property
    def relative_error(self) -> float | None:
        return None if self.observed is None else (self.observed - self.target) / self.target


@dataclass(frozen=True)
class RouteJudgement:
    """One route's results so far against the reference's targets."""

    route: str
    count: int
    edges: tuple[EdgeCheck, ...]
    verdict: Verdict

    def drifted(self, tolerance: float) -> list[EdgeCheck]:
        return [e for e in self.edges if e.relative_error is not None and abs(e.relative_error) > tolerance]

    def render(self) -> str:
        figures = "  ".join(
            f">={e.threshold}: {'-' if e.observed is None else f'{e.observed:.4f}'} (target {e.target:.4f}"
            + ("" if e.relative_error is None else f", {e.relative_error:+.0%}")
            + ")"
            for e in self.edges
        )
        return f"  {self.route:<32}{self.count:>8} results  {self.verdict:<8}{figures}"


def judge_route(
    route: str,
    stats: Mapping[str, Any],
    targets: Mapping[str, float],
    *,
    tolerance: float = DEFAULT_GUARD_TOLERANCE,
    min_events: int,
) -> RouteJudgement:
    """``fail`` when any edge's observed rate is further than ``tolerance`` (relative) from its
    target once ``min_events`` results were seen; ``pending`` before that; else ``pass``."""
    rates = alert_rates(stats)
    count = int(stats.get("count", 0)) if stats else 0
    edges = tuple(EdgeCheck(key, target, rates.get(key)) for key, target in targets.items())
    judgement = RouteJudgement(route, count, edges, "pending")
    if count < min_events:
        return judgement
    verdict: Verdict = "fail" if judgement.drifted(tolerance) else "pass"
    return RouteJudgement(route, count, edges, verdict)
