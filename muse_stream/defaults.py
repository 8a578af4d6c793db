"""Defaults that ``muse ... --help`` shows, in a module that imports nothing.

The modules that use them (the worker, fitting, the guard, monitoring, the benchmarks) load
XGBoost, numpy or Kafka clients; the CLI reads the values from here, so building its parser loads
none of those.
"""

from __future__ import annotations

# The worker (pipeline/worker.py WorkerSettings, pipeline/scoring.py ShadowGuard).
MAX_BATCH = 5000
CONTENDED_BATCH = 1000
COMMIT_INTERVAL_MS = 50
OUTAGE_LIMIT_MS = 300_000
SHADOW_BUDGET_MS = 50.0

# Fitting and checking quantile maps (transforms/quantile_map.py, predictors/fitting.py).
DEFAULT_N_KNOTS = 256
# Relative error a fit may leave at a reference edge: 0.1 = within 10% of each target alert rate
# (0.70 +- 0.07 at the default curve's 0.2 edge, 0.05 +- 0.005 at its 0.8 edge).
DEFAULT_RATE_TOLERANCE = 0.1

# Expected and observed alert rates (config/plan.py and config/operations.py, monitor/guard.py).
DEFAULT_EXPECTATION_TOLERANCE = 0.2
DEFAULT_GUARD_TOLERANCE = 0.2

# Monitoring (monitor/aggregates.py).
DEFAULT_BINS = 20

# Benchmarks (muse_stream/bench/: stability.py, soak.py, promotion.py, noisy_neighbour.py).
STABILITY_WINDOWS = 10
STABILITY_EVENTS_PER_WINDOW = 100_000
SOAK_RATE = 2000  # events/s over all tenants
SOAK_PARTITIONS = 3
SOAK_SEED = 1
SOAK_MEAN_GAP_S = 15.0
SOAK_PAUSE_S = 14.0
PROMOTION_SHADOW_EVENTS = 50_000  # the promotion benchmark's goals are set for this many shadow scores
NOISY_QUOTA_BYTES = 4 * 1024 * 1024
