"""Quantile Mapping: a monotone map from a model's corrected scores onto a reference distribution.

``mapped = F_ref^-1(F_fit(s))``, stored as piecewise-linear knots ``(x_k, y_k)``. It is fitted
without labels from a sample of corrected scores, so a new model version can be given the same
alert rate at every threshold as the reference declares, and tenants keep their thresholds.

Knots are order statistics of the fit sample, taken at probability levels from a uniform grid
(``n_knots`` steps) plus a geometric grid of alert rates down to ``1/n`` (the upper tail, where
alerting thresholds live, gets the finest resolution) plus the reference's own edges. Each distinct
knot value ``x`` is paired with the reference threshold at its mid-rank level
``(#{s < x} + #{s <= x}) / 2n``; for a tie-free sample that is the Hazen plotting position, and a
point mass lands in the middle of its jump, so heavy ties never create duplicate knots, NaN or a
discontinuity. Between knots the map is linear; outside the fitted range it is clipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from muse_stream.defaults import DEFAULT_N_KNOTS
from muse_stream.transforms.posterior import TransformInputError, as_probabilities
from muse_stream.transforms.reference import Reference
from muse_stream.transforms.samples import MIN_FIT_SAMPLES, check_sample

FORMAT = "muse.quantile_map/1"
MIN_N_KNOTS = 128  # uniform spacing 1/128 still leaves room under the 0.01 alert-rate tolerance
TAIL_KNOTS = 48
TAIL_START = 0.05

__all__ = ["DEFAULT_N_KNOTS", "MIN_FIT_SAMPLES", "QuantileMap"]


def _fit_levels(n: int, n_knots: int, reference: Reference) -> np.ndarray:
    body = np.linspace(0.0, 1.0, n_knots + 1)
    tail = 1.0 - np.geomspace(1.0 / n, TAIL_START, TAIL_KNOTS)
    edges = 1.0 - reference.alert_rate_at(np.asarray(reference.edges, dtype=np.float64))
    return np.clip(np.concatenate([body, tail, edges]), 0.0, 1.0)


class QuantileMap:
    """Immutable knots of a fitted map; :meth:`transform` is one ``np.interp`` call."""

    __slots__ = ("_x", "_y", "reference", "n_fit")

    def __init__(self, x: npt.ArrayLike, y: npt.ArrayLike, *, reference: dict[str, Any], n_fit: int) -> None:
        xs = np.array(x, dtype=np.float64)
        ys = np.array(y, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
            raise TransformInputError(
                f"quantile map knots must be two equal-length non-empty lists, got {xs.shape} and {ys.shape}"
            )
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise TransformInputError("quantile map knots must be finite numbers")
        if np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) < 0):
            raise TransformInputError("quantile map knots must have strictly increasing x and non-decreasing y")
        if xs[0] < 0 or xs[-1] > 1 or ys[0] < 0 or ys[-1] > 1:
            raise TransformInputError("quantile map knots must lie in [0, 1]")
        xs.flags.writeable = False
        ys.flags.writeable = False
        self._x, self._y = xs, ys
        self.reference = dict(reference)
        self.n_fit = int(n_fit)

    @property
    def x(self) -> np.ndarray:
        """Knot positions on the corrected-score axis (read-only)."""
        return self._x

    @property
    def y(self) -> np.ndarray:
        """Knot values on the reference axis (read-only)."""
        return self._y

    @classmethod
    def fit(cls, corrected_scores: npt.ArrayLike, reference: Reference, *, n_knots: int = DEFAULT_N_KNOTS) -> QuantileMap:
        """Fit on a sample of corrected scores (no labels) so they follow ``reference``."""
        if int(n_knots) < MIN_N_KNOTS:
            raise TransformInputError(f"n_knots={n_knots} is too coarse to hold alert rates; use at least {MIN_N_KNOTS}")
        sample = np.sort(check_sample(corrected_scores, "quantile-map fit sample"))
        n = sample.size
        levels = _fit_levels(n, int(n_knots), reference)
        index = np.clip(np.rint(levels * n - 0.5), 0, n - 1).astype(np.int64)
        x = np.unique(np.concatenate([sample[index], sample[[0, -1]]]))
        if x.size < 2:
            raise TransformInputError(
                f"quantile-map fit sample: all {n} scores equal {float(x[0]):.6g}; a constant score cannot be "
                "mapped onto a distribution (check the model and the fit window)"
            )
        midrank = (np.searchsorted(sample, x, side="left") + np.searchsorted(sample, x, side="right")) / (2.0 * n)
        y = np.clip(reference.threshold_at(1.0 - midrank), 0.0, 1.0)
        y = np.maximum.accumulate(y)
        return cls(x, y, reference=reference.describe(), n_fit=n)

    def transform(self, scores: npt.ArrayLike) -> np.ndarray:
        """Mapped scores (float64 in [0, 1]); NaN or scores outside [0, 1] raise."""
        return np.interp(as_probabilities(scores, what="corrected scores"), self._x, self._y)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_fit": self.n_fit,
            "reference": self.reference,
            "x": self._x.tolist(),
            "y": self._y.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileMap:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise TransformInputError(f"not a quantile map: expected format {FORMAT!r}, found {found!r}")
        try:
            return cls(data["x"], data["y"], reference=data["reference"], n_fit=data["n_fit"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, TransformInputError):
                raise
            raise TransformInputError(f"malformed quantile map ({error!r}); refit it with `muse predictors fit`") from error

    def to_json(self) -> str:
        """Canonical JSON; floats are written shortest-round-trip, so a reload maps bit-identically."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> QuantileMap:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise TransformInputError(f"quantile map JSON does not parse: {error}") from error
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileMap):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QuantileMap({self._x.size} knots, n_fit={self.n_fit}, reference={self.reference.get('kind')})"
