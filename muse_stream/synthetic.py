"""Seeded synthetic fraud-like events and XGBoost training helpers.

Why: benchmarks, demos and tests need card-fraud-shaped data (rare positives, several fraud
patterns, noise features, covariate drift over time) without shipping a dataset. Everything is a
pure function of its seed, so a figure printed by a benchmark can be reproduced bit for bit.

Generation: the label is drawn first (prevalence ``fraud_rate``, raised a little by ``drift``);
every event gets standard-normal features with a shared latent factor; each fraud event then
follows one of three patterns (account takeover, stolen card, mule) that shifts a few features,
and a quarter of fraud is "stealthy" with a weak shift, which keeps the AUC of a good model around
0.9 instead of 1. ``drift`` adds a fixed covariate shift and rescaling to both classes, so the score
distribution of a fixed model moves as drift grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

__all__ = [
    "FEATURE_NAMES",
    "TrainingParams",
    "events_as_dicts",
    "generate_events",
    "generate_stream",
    "label_lateness",
    "train_model",
]

FEATURE_NAMES: tuple[str, ...] = (
    "amount_log",
    "amount_zscore",
    "hour_sin",
    "hour_cos",
    "day_of_week",
    "account_age_log",
    "customer_age",
    "velocity_1h",
    "velocity_24h",
    "velocity_7d",
    "distinct_merchants_24h",
    "distinct_devices_30d",
    "device_age_log",
    "ip_risk",
    "email_domain_risk",
    "billing_shipping_distance_log",
    "merchant_risk",
    "mcc_risk",
    "card_present",
    "foreign_txn",
    "failed_logins_24h",
    "password_reset_7d",
    "session_length_log",
    "keystroke_speed",
    "credit_limit_ratio",
    "balance_ratio",
    "name_email_similarity",
    "phone_valid",
    "aux_noise_1",
    "aux_noise_2",
)
N_FEATURES = len(FEATURE_NAMES)
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

# Fraud patterns: feature -> mean shift (in standard deviations) for a fraud event of that pattern.
_PATTERNS: tuple[dict[str, float], ...] = (
    {  # account takeover
        "failed_logins_24h": 1.0,
        "password_reset_7d": 0.8,
        "device_age_log": -0.9,
        "distinct_devices_30d": 0.8,
        "ip_risk": 0.7,
        "session_length_log": -0.6,
        "keystroke_speed": 0.5,
    },
    {  # stolen card
        "amount_log": 0.9,
        "amount_zscore": 1.0,
        "foreign_txn": 0.8,
        "merchant_risk": 0.7,
        "mcc_risk": 0.6,
        "card_present": -0.8,
        "hour_sin": -0.5,
        "billing_shipping_distance_log": 0.7,
    },
    {  # mule / synthetic identity
        "account_age_log": -1.0,
        "customer_age": -0.6,
        "email_domain_risk": 0.8,
        "name_email_similarity": -0.8,
        "phone_valid": -0.7,
        "velocity_24h": 0.8,
        "velocity_7d": 0.6,
        "credit_limit_ratio": 0.6,
    },
)
_PATTERN_WEIGHTS = np.array([0.35, 0.40, 0.25])
_STEALTH_FRACTION = 0.25
_STEALTH_SCALE = 0.3
_SHIFT_SCALE = 1.8  # overall signal strength; tuned so a depth-4/6 XGBoost reaches AUC ~0.89
_LATENT_LOADING = 0.4  # a shared "customer activity" factor correlates the velocity/amount block

# Drift direction and rescaling are fixed (not seeded): drift is the same phenomenon for every seed.
_DRIFT_RNG = np.random.default_rng(20240917)
_DRIFT_SHIFT = _DRIFT_RNG.normal(0.0, 0.5, N_FEATURES)
_DRIFT_SCALE = 1.0 + _DRIFT_RNG.uniform(-0.15, 0.25, N_FEATURES)
_DRIFT_PREVALENCE_GAIN = 0.25  # fraud rate grows by 25% per unit of drift

_LATENT_FEATURES = [
    _INDEX[n]
    for n in ("amount_log", "velocity_1h", "velocity_24h", "velocity_7d", "distinct_merchants_24h", "session_length_log")
]
_BINARY_FEATURES = [_INDEX[n] for n in ("card_present", "foreign_txn", "password_reset_7d", "phone_valid")]


def _shift_matrix() -> np.ndarray:
    shifts = np.zeros((len(_PATTERNS), N_FEATURES))
    for p, pattern in enumerate(_PATTERNS):
        for name, value in pattern.items():
            shifts[p, _INDEX[name]] = value * _SHIFT_SCALE
    return shifts


_SHIFTS = _shift_matrix()


def _events(rng: np.random.Generator, n: int, fraud_rate: float, drift: float) -> tuple[np.ndarray, np.ndarray]:
    if n < 0:
        raise ValueError(f"n={n} must be non-negative")
    if not 0.0 < fraud_rate < 1.0:
        raise ValueError(f"fraud_rate={fraud_rate} must be strictly between 0 and 1")
    if drift < 0.0:
        raise ValueError(f"drift={drift} must be non-negative")
    rate = min(fraud_rate * (1.0 + _DRIFT_PREVALENCE_GAIN * drift), 0.5)
    y = (rng.random(n) < rate).astype(np.int8)
    x = rng.standard_normal((n, N_FEATURES))
    x[:, _LATENT_FEATURES] += _LATENT_LOADING * rng.standard_normal((n, 1))
    fraud = np.flatnonzero(y)
    pattern = rng.choice(len(_PATTERNS), size=fraud.size, p=_PATTERN_WEIGHTS)
    strength = np.where(rng.random(fraud.size) < _STEALTH_FRACTION, _STEALTH_SCALE, 1.0)
    x[fraud] += _SHIFTS[pattern] * strength[:, None]
    # Non-linearity: fraud velocity bursts are heavy-tailed, not a plain mean shift.
    burst = fraud[rng.random(fraud.size) < 0.3]
    x[burst, _INDEX["velocity_1h"]] += rng.exponential(1.5, burst.size)
    x = x * (1.0 + (_DRIFT_SCALE - 1.0) * drift) + _DRIFT_SHIFT * drift
    x[:, _BINARY_FEATURES] = (x[:, _BINARY_FEATURES] > 0.5).astype(np.float64)
    return x.astype(np.float32), y


def generate_events(n: int, *, seed: int, fraud_rate: float = 0.02, drift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: X float32 ``(n, 30)`` ordered as :data:`FEATURE_NAMES`, y int8 in {0, 1}.

    ``drift`` (>= 0, 0 = the base distribution) shifts and rescales every feature along a fixed
    direction and raises prevalence by 25% per unit; bit-identical for a given seed.
    """
    return _events(np.random.default_rng(seed), int(n), float(fraud_rate), float(drift))


def generate_stream(
    n_windows: int,
    events_per_window: int,
    *,
    seed: int,
    fraud_rate: float = 0.02,
    drift_per_window: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Consecutive windows for walk-forward experiments; window ``i`` has drift ``i * drift_per_window``.

    Each window has its own child seed ``(seed, i)``, so window ``i`` does not depend on how many
    windows are generated.
    """
    return [
        _events(np.random.default_rng([seed, i]), int(events_per_window), float(fraud_rate), i * float(drift_per_window))
        for i in range(int(n_windows))
    ]


# When outcomes become known, in days after the event: fraud through the cardholder's dispute (a
# chargeback), lognormal around a median of 5 days, a tenth after about 16; genuine events once the
# 30-day dispute window has closed without one, spread over the following day.
FRAUD_LABEL_MEDIAN_DAYS = 5.0
FRAUD_LABEL_SIGMA = 0.9
GENUINE_LABEL_DAYS = 30.0


def label_lateness(y: np.ndarray, *, seed: int, day_ms: float = 86_400_000.0) -> np.ndarray:
    """Milliseconds (int64) after each event at which its label ``y`` becomes known: fraud
    (chargebacks) early and spread out, genuine when the dispute window closes. So at any moment the
    newest events have no label yet, and fraud is labelled before genuine events of the same day,
    as in a real backtest. ``day_ms`` compresses time (the demo runs a day in a tenth of a second)."""
    labels = np.asarray(y)
    rng = np.random.default_rng(seed)
    fraud_days = rng.lognormal(np.log(FRAUD_LABEL_MEDIAN_DAYS), FRAUD_LABEL_SIGMA, size=labels.size)
    genuine_days = GENUINE_LABEL_DAYS + rng.uniform(0.0, 1.0, size=labels.size)
    return np.round(np.where(labels == 1, fraud_days, genuine_days) * day_ms).astype(np.int64)


def events_as_dicts(X: np.ndarray) -> list[dict[str, float]]:
    """Rows as ``{feature_name: value}`` payloads (Python floats, JSON-ready) for the streaming demo."""
    array = np.asarray(X)
    if array.ndim != 2 or array.shape[1] != N_FEATURES:
        raise ValueError(f"expected an array of shape (n, {N_FEATURES}), got {array.shape}")
    return [dict(zip(FEATURE_NAMES, row, strict=True)) for row in array.tolist()]


def downsample_negatives(y: np.ndarray, negative_keep_fraction: float, *, seed: int) -> np.ndarray:
    """Sorted row indices keeping every positive and ``round(b * n_negatives)`` seeded negatives."""
    b = float(negative_keep_fraction)
    if not 0.0 < b <= 1.0:
        raise ValueError(f"negative_keep_fraction={b} must be in (0, 1]")
    labels = np.asarray(y)
    negatives = np.flatnonzero(labels == 0)
    keep = np.random.default_rng(seed).choice(negatives, size=int(round(b * negatives.size)), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(labels != 0), keep]))


@dataclass(frozen=True)
class TrainingParams:
    """How to train one synthetic model version (not which model it is: the registry's
    ``ModelRecord`` and a predictor's ``ModelRef`` say that). ``b``: the fraction of negatives kept."""

    n_trees: int
    max_depth: int
    b: float
    learning_rate: float = 0.1

    def train(self, X: np.ndarray, y: np.ndarray, *, seed: int) -> xgb.Booster:
        return train_model(
            X,
            y,
            n_trees=self.n_trees,
            max_depth=self.max_depth,
            negative_keep_fraction=self.b,
            seed=seed,
            learning_rate=self.learning_rate,
        )


def train_model(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_trees: int,
    max_depth: int,
    negative_keep_fraction: float,
    seed: int,
    learning_rate: float = 0.1,
) -> xgb.Booster:
    """A deterministic binary XGBoost model trained on negatives downsampled to fraction ``b``.

    Its scores over-estimate fraud probability by the undersampling prior shift; undo that with
    ``posterior_correction(scores, b)``.
    """
    rows = downsample_negatives(y, negative_keep_fraction, seed=seed)
    dtrain = xgb.DMatrix(
        np.asarray(X, dtype=np.float32)[rows], label=np.asarray(y)[rows], feature_names=list(FEATURE_NAMES), nthread=2
    )
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": int(max_depth),
        "eta": float(learning_rate),
        "subsample": 1.0,
        "nthread": 2,
        "seed": int(seed),
        "verbosity": 0,
    }
    return xgb.train(params, dtrain, num_boost_round=int(n_trees))
