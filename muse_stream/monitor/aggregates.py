"""Pure aggregation for the monitor: per-window counts, alert rates and a coarse histogram.

No Kafka and no Faust here. A window's statistics are a plain JSON-able dict (that is what the
Faust table stores and its changelog carries), built and read only through these functions:

* ``count``: scores seen; ``invalid``: records on an output topic that are not a valid ScoreResult;
* ``above``: one count per threshold of ``scores >= threshold``;
* ``hist``: ``bins`` equal-width bins over [0, 1] (a score of exactly 1.0 falls in the last bin);
* ``versions``: predictor version -> count.

The thresholds are the edges of the reference alert-rate curve, so the observed alert rate at each
edge can be set beside the rate the reference promises (:func:`reference_targets`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from muse_stream.defaults import DEFAULT_BINS
from muse_stream.events import ScoreResult
from muse_stream.transforms import AlertRateCurve

WindowStats = dict[str, Any]


def default_thresholds() -> tuple[float, ...]:
    """The reference curve's edges: the thresholds whose alert rates MUSE keeps stable."""
    return AlertRateCurve.default().edges


def reference_targets(curve: AlertRateCurve | None = None) -> dict[str, float]:
    """Threshold (as a string key, like :func:`alert_rates`) -> the reference's target alert rate."""
    curve = curve or AlertRateCurve.default()
    return {threshold_key(edge): rate for edge, rate in zip(curve.edges, curve.rates, strict=True)}


def threshold_key(threshold: float) -> str:
    return f"{threshold:g}"


def empty(thresholds: Sequence[float], bins: int = DEFAULT_BINS) -> WindowStats:
    if bins < 1:
        raise ValueError(f"a histogram needs at least one bin, got {bins}")
    return {
        "count": 0,
        "invalid": 0,
        "thresholds": [float(t) for t in thresholds],
        "above": [0] * len(thresholds),
        "hist": [0] * bins,
        "versions": {},
    }


def add_scores(
    stats: Mapping[str, Any] | None,
    scores: Iterable[tuple[float, str]],
    *,
    thresholds: Sequence[float],
    bins: int = DEFAULT_BINS,
    invalid: int = 0,
) -> WindowStats:
    """A new stats dict: ``stats`` (empty when None or ``{}``) plus ``(score, predictor_version)`` pairs.

    Scores must lie in [0, 1] (ScoreResult guarantees it); anything else raises ValueError.
    """
    out = _copy(stats) if stats else empty(thresholds, bins)
    if out["thresholds"] != [float(t) for t in thresholds]:
        raise ValueError(f"stats were kept for thresholds {out['thresholds']}, not {[float(t) for t in thresholds]}")
    hist, above, versions = out["hist"], out["above"], out["versions"]
    n_bins = len(hist)
    for score, version in scores:
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score {score} is outside [0, 1]")
        out["count"] += 1
        hist[min(int(score * n_bins), n_bins - 1)] += 1
        for i, threshold in enumerate(out["thresholds"]):
            if score >= threshold:
                above[i] += 1
        versions[version] = versions.get(version, 0) + 1
    out["invalid"] += invalid
    return out


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> WindowStats:
    """Two windows' (or two partitions') stats added together."""
    if not a:
        return _copy(b)
    if not b:
        return _copy(a)
    if a["thresholds"] != b["thresholds"] or len(a["hist"]) != len(b["hist"]):
        raise ValueError("cannot merge stats kept with different thresholds or bins")
    out = _copy(a)
    out["count"] += b["count"]
    out["invalid"] += b["invalid"]
    out["above"] = [x + y for x, y in zip(a["above"], b["above"], strict=True)]
    out["hist"] = [x + y for x, y in zip(a["hist"], b["hist"], strict=True)]
    for version, n in b["versions"].items():
        out["versions"][version] = out["versions"].get(version, 0) + n
    return out


def alert_rates(stats: Mapping[str, Any]) -> dict[str, float | None]:
    """Threshold key -> observed fraction of scores >= threshold; None where no score was seen."""
    if not stats:
        return {}
    count = stats["count"]
    return {threshold_key(t): (n / count if count else None) for t, n in zip(stats["thresholds"], stats["above"], strict=True)}


def summary(stats: Mapping[str, Any] | None, targets: Mapping[str, float]) -> dict[str, Any]:
    """What the web views show for one window: counts, observed rates, targets and their gaps."""
    stats = stats or {}
    rates = alert_rates(stats) or {k: None for k in targets}
    return {
        "count": stats.get("count", 0),
        "invalid": stats.get("invalid", 0),
        "alert_rates": rates,
        "target_alert_rates": dict(targets),
        "drift": {k: (None if rate is None or k not in targets else rate - targets[k]) for k, rate in rates.items()},
        "histogram": list(stats.get("hist", [])),
        "predictor_versions": dict(stats.get("versions", {})),
    }


def _copy(stats: Mapping[str, Any]) -> WindowStats:
    return {
        "count": int(stats["count"]),
        "invalid": int(stats.get("invalid", 0)),
        "thresholds": [float(t) for t in stats["thresholds"]],
        "above": list(stats["above"]),
        "hist": list(stats["hist"]),
        "versions": dict(stats["versions"]),
    }


def score_of(raw: bytes | None, tenant: str) -> tuple[float, str] | None:
    """``(score, predictor_version)`` of one output record, or None when it is not a valid
    ScoreResult of ``tenant`` (the tenant comes from the topic; a payload naming another is invalid)."""
    if not raw:
        return None
    try:
        result = ScoreResult.model_validate_json(raw)
    except ValidationError:
        return None
    if result.tenant != tenant:
        return None
    return result.score, result.predictor_version
