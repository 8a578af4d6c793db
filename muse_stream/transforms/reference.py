"""Reference distributions that Quantile Mapping maps scores onto.

A reference answers two questions: the target alert rate ``P(mapped >= t)`` at a threshold ``t``
(:meth:`alert_rate_at`) and, inversely, the threshold that alerts on a given fraction
(:meth:`threshold_at`). It is always declared by the operator, never hard-coded in the map:

* :class:`AlertRateCurve`: target alert rates at a few edges, e.g. the study's
  ``{0.2: 0.70, 0.5: 0.35, 0.6: 0.10, 0.8: 0.05}``, completed by the endpoints
  ``P(mapped >= 0) = 1`` and ``P(mapped >= 1) = 0`` and interpolated with a monotone cubic (PCHIP,
  Fritsch-Carlson). Why PCHIP: it passes exactly through every declared edge, never overshoots (so
  the curve stays non-increasing and inside [0, 1]), handles the endpoint rate 0 at ``t = 1`` that a
  log-alert-rate interpolation cannot reach, and has a continuous slope, so mapped scores have a
  density without the spikes a piecewise-linear curve puts at every edge.
* :class:`EmpiricalReference`: a sample of scores, e.g. today's live predictor's, so adopting MUSE
  keeps every threshold a tenant already uses at the alert rate it has today.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from muse_stream.transforms.posterior import TransformInputError, as_probabilities
from muse_stream.transforms.samples import check_sample

#: The study's curve: threshold edge -> target P(mapped >= edge).
DEFAULT_CURVE: dict[float, float] = {0.2: 0.70, 0.5: 0.35, 0.6: 0.10, 0.8: 0.05}

_BISECTION_STEPS = 64  # halves [0, 1] down to below one float64 ulp


class Reference(Protocol):
    """What :class:`~muse_stream.transforms.quantile_map.QuantileMap` needs from a reference."""

    @property
    def edges(self) -> tuple[float, ...]: ...

    def alert_rate_at(self, thresholds: npt.ArrayLike) -> np.ndarray: ...

    def threshold_at(self, alert_rates: npt.ArrayLike) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson slopes (as in SciPy's ``PchipInterpolator``): monotone, no overshoot."""
    h = np.diff(x)
    delta = np.diff(y) / h
    slopes = np.zeros_like(y)
    same_sign = delta[:-1] * delta[1:] > 0
    w1 = 2.0 * h[1:] + h[:-1]
    w2 = h[1:] + 2.0 * h[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    slopes[1:-1] = np.where(same_sign, harmonic, 0.0)
    slopes[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    slopes[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return slopes


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    slope = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(slope) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(slope) > abs(3.0 * d0):
        return 3.0 * d0
    return float(slope)


@dataclass(frozen=True)
class AlertRateCurve:
    """Target alert rates at declared edges; ``edges`` and ``rates`` are parallel tuples."""

    edges: tuple[float, ...]
    rates: tuple[float, ...]
    _knots_x: np.ndarray = field(init=False, repr=False, compare=False)
    _knots_y: np.ndarray = field(init=False, repr=False, compare=False)
    _slopes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        rates = tuple(float(r) for r in self.rates)
        if not edges or len(edges) != len(rates):
            raise TransformInputError(
                "an alert-rate curve needs at least one edge and exactly one rate per edge, "
                f"got edges={list(edges)} rates={list(rates)}"
            )
        for name, values, increasing in (("edges", edges, True), ("rates", rates, False)):
            if not all(0.0 < v < 1.0 for v in values):
                raise TransformInputError(f"alert-rate curve {name} must lie strictly inside (0, 1): {values!r}")
            steps = np.diff(values) if increasing else -np.diff(values)
            if np.any(steps <= 0):
                order = "increasing" if increasing else "decreasing"
                raise TransformInputError(
                    f"alert-rate curve {name} must be strictly {order} (higher thresholds alert on fewer events): {values!r}"
                )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "rates", rates)
        knots_x = np.array((0.0, *edges, 1.0))
        knots_y = np.array((1.0, *rates, 0.0))
        object.__setattr__(self, "_knots_x", knots_x)
        object.__setattr__(self, "_knots_y", knots_y)
        object.__setattr__(self, "_slopes", _pchip_slopes(knots_x, knots_y))

    @classmethod
    def default(cls) -> AlertRateCurve:
        """The quantile-mapping study's curve."""
        return cls.from_mapping(DEFAULT_CURVE)

    @classmethod
    def from_mapping(cls, curve: Mapping[float, float]) -> AlertRateCurve:
        items = sorted((float(edge), float(rate)) for edge, rate in curve.items())
        return cls(tuple(e for e, _ in items), tuple(r for _, r in items))

    @classmethod
    def parse(cls, text: str) -> AlertRateCurve:
        """Parse ``"0.2:0.70,0.5:0.35"`` (the CLI form)."""
        try:
            pairs = [item.split(":") for item in text.split(",") if item.strip()]
            return cls.from_mapping({float(edge): float(rate) for edge, rate in pairs})
        except ValueError as error:
            if isinstance(error, TransformInputError):
                raise
            raise TransformInputError(
                f"cannot read alert-rate curve {text!r}: write EDGE:RATE pairs separated by commas, "
                "e.g. 0.2:0.70,0.5:0.35,0.6:0.10,0.8:0.05"
            ) from error

    def as_mapping(self) -> dict[float, float]:
        return dict(zip(self.edges, self.rates, strict=True))

    def alert_rate_at(self, thresholds: npt.ArrayLike) -> np.ndarray:
        """Target ``P(mapped >= t)``; thresholds outside [0, 1] are clamped to the endpoints."""
        t = np.clip(np.asarray(thresholds, dtype=np.float64), 0.0, 1.0)
        if np.isnan(t).any():
            raise TransformInputError("alert-rate thresholds must not be NaN")
        x, y, d = self._knots_x, self._knots_y, self._slopes
        k = np.clip(np.searchsorted(x, t, side="right") - 1, 0, x.size - 2)
        h = x[k + 1] - x[k]
        u = (t - x[k]) / h
        u2, u3 = u * u, u * u * u
        value = (
            (2 * u3 - 3 * u2 + 1) * y[k] + (u3 - 2 * u2 + u) * h * d[k] + (-2 * u3 + 3 * u2) * y[k + 1] + (u3 - u2) * h * d[k + 1]
        )
        return np.clip(value, 0.0, 1.0)

    def threshold_at(self, alert_rates: npt.ArrayLike) -> np.ndarray:
        """The threshold whose target alert rate is ``a`` (bisection: the curve is monotone)."""
        a = as_probabilities(alert_rates, what="alert rates")
        low = np.zeros_like(a)
        high = np.ones_like(a)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (low + high)
            above = self.alert_rate_at(mid) > a
            low = np.where(above, mid, low)
            high = np.where(above, high, mid)
        return high

    def describe(self) -> dict[str, Any]:
        return {"kind": "alert_rate_curve", "edges": [list(p) for p in zip(self.edges, self.rates, strict=True)]}


@dataclass(frozen=True, eq=False)
class EmpiricalReference:
    """A reference given by a sample of scores in [0, 1] (e.g. today's live predictor's)."""

    sorted_scores: np.ndarray
    edges: tuple[float, ...] = tuple(DEFAULT_CURVE)

    @classmethod
    def from_scores(cls, scores: npt.ArrayLike, *, edges: tuple[float, ...] | None = None) -> EmpiricalReference:
        sample = np.sort(check_sample(scores, "reference scores"))
        sample.flags.writeable = False
        return cls(sample, tuple(DEFAULT_CURVE) if edges is None else tuple(float(e) for e in edges))

    def alert_rate_at(self, thresholds: npt.ArrayLike) -> np.ndarray:
        """``P(reference >= t)`` on the sample."""
        t = np.asarray(thresholds, dtype=np.float64)
        below = np.searchsorted(self.sorted_scores, t, side="left")
        return (self.sorted_scores.size - below) / self.sorted_scores.size

    def threshold_at(self, alert_rates: npt.ArrayLike) -> np.ndarray:
        """The reference quantile at level ``1 - a``, interpolated between Hazen plotting positions."""
        a = as_probabilities(alert_rates, what="alert rates")
        n = self.sorted_scores.size
        positions = (np.arange(n) + 0.5) / n
        return np.interp(1.0 - a, positions, self.sorted_scores)

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256(np.ascontiguousarray(self.sorted_scores, dtype="<f8").tobytes()).hexdigest()
        return {"kind": "empirical", "n": int(self.sorted_scores.size), "sha256": digest}
