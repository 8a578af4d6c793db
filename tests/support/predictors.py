"""Small real predictors for tests: trained on synthetic data, registered in a temporary store."""

from __future__ import annotations

from muse_stream.synthetic_deployment import artifact_bytes, train_predictor

# The package's own recipe, under the name the tests use: same defaults, nothing wrapped.
small_predictor = train_predictor

__all__ = ["artifact_bytes", "small_predictor"]
