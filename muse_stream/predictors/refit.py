"""Refit a predictor's quantile map on its own corrected scores from live traffic (pure, no Kafka).

``muse predictors fit --from-shadow`` reads a shadow's corrected scores from the shadow topic and
hands them here: the model, ``b``, features and policy stay as they are, only the map is refitted,
so the new spec differs from the old one by its map and version (and therefore by its id).

Version rule: the old version plus a ``-fitN`` suffix, N counting refits: ``2`` -> ``2-fit1``,
``2-fit1`` -> ``2-fit2``. The model's version stays readable at the front, the suffix says the map
came from traffic, and no refit can take a version a retrained model would use (``2.1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from muse_stream.errors import MuseError
from muse_stream.predictors.fitting import EdgeRate, reproduced_rates
from muse_stream.predictors.spec import PredictorSpec
from muse_stream.transforms import DEFAULT_N_KNOTS, AlertRateCurve, QuantileMap, Reference

_FIT_SUFFIX = re.compile(r"^(?P<base>.+)-fit(?P<n>[0-9]+)$")


def refit_version(version: str) -> str:
    """``2`` -> ``2-fit1``; ``2-fit1`` -> ``2-fit2``."""
    match = _FIT_SUFFIX.match(version)
    if match:
        return f"{match['base']}-fit{int(match['n']) + 1}"
    return f"{version}-fit1"


def reference_of(quantile_map: Mapping[str, Any], *, owner: str) -> AlertRateCurve:
    """The reference a spec's map was fitted onto, rebuilt from the map's description: an alert-rate
    curve carries its edges and rates; an empirical sample does not carry its scores."""
    described = quantile_map.get("reference", {})
    if described.get("kind") == "alert_rate_curve":
        return AlertRateCurve.from_mapping({float(edge): float(rate) for edge, rate in described["edges"]})
    raise MuseError(
        f"{owner} maps onto a {described.get('kind', 'unknown')} reference whose scores are not in its spec; "
        "give the reference explicitly with --curve EDGE:RATE,... or --reference-parquet FILE"
    )


def refit_spec(
    spec: PredictorSpec,
    corrected: npt.ArrayLike,
    reference: Reference,
    *,
    version: str | None = None,
    n_knots: int = DEFAULT_N_KNOTS,
) -> tuple[PredictorSpec, QuantileMap, list[EdgeRate]]:
    """``spec`` with its map refitted on ``corrected`` onto ``reference`` and its version bumped (or
    ``version``), the map, and the alert rates the map reproduces on ``corrected`` at the reference's edges."""
    scores = np.asarray(corrected, dtype=np.float64)
    quantile_map = QuantileMap.fit(scores, reference, n_knots=n_knots)
    data = spec.model_dump(mode="json")
    data.update(version=version or refit_version(spec.version), quantile_map=quantile_map.to_dict())
    return PredictorSpec.model_validate(data), quantile_map, reproduced_rates(quantile_map, scores, reference)
