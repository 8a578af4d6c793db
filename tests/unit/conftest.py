"""Fixtures shared by the unit tests of batch scoring and replay."""

from __future__ import annotations

import pytest

from muse_stream.predictors import Predictor
from tests.support.predictors import small_predictor


@pytest.fixture(scope="module")
def predictors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Predictor]:
    store = tmp_path_factory.mktemp("store")
    return {
        "v1": small_predictor(store, version="1", seed=1),
        "v2": small_predictor(store, version="2", seed=2, max_depth=4),
        "strict": small_predictor(store, name="strict", version="1", seed=1, missing_policy="reject"),
    }
