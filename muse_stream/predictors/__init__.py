"""Predictors: immutable, content-addressed ``features -> model -> correction -> map`` DAGs."""

from muse_stream.predictors.predictor import MissingFeatureError, Predictor, ScoreBatch
from muse_stream.predictors.spec import ModelRef, PredictorSpec, PredictorSpecError

__all__ = ["MissingFeatureError", "ModelRef", "Predictor", "PredictorSpec", "PredictorSpecError", "ScoreBatch"]
