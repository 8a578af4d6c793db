"""Fixtures the integration modules share: a model store per module and its fraud v1 predictor."""

from __future__ import annotations

from pathlib import Path

import pytest

from muse_stream.predictors import Predictor
from tests.support.predictors import small_predictor


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def predictor(store_dir: Path) -> Predictor:
    """fraud version 1 (seed 1): the one predictor of a module that needs only one."""
    return small_predictor(store_dir, name="fraud", version="1", seed=1)
