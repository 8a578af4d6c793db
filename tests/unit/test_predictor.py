"""Predictor: DAG scoring, content id, save/load bit-identity, missing features, shared models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost

from muse_stream import synthetic
from muse_stream.errors import MuseError
from muse_stream.models import (
    FileArtifactStore,
    ModelRecord,
    ModelRegistry,
    booster_load_counts,
    clear_booster_cache,
)
from muse_stream.predictors import (
    MissingFeatureError,
    ModelRef,
    Predictor,
    PredictorSpec,
    PredictorSpecError,
)
from muse_stream.transforms import AlertRateCurve, QuantileMap, posterior_correction

B = 0.2


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, xgboost.Booster]:
    X, y = synthetic.generate_events(4000, seed=11)
    return X, synthetic.train_model(X, y, n_trees=8, max_depth=3, negative_keep_fraction=B, seed=11)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    clear_booster_cache()
    return ModelRegistry(FileArtifactStore(tmp_path / "store"))


def make_spec(
    record: ModelRecord, X: np.ndarray, booster: xgboost.Booster, *, policy: str = "xgboost_missing", version: str = "1"
) -> PredictorSpec:
    corrected = posterior_correction(booster.inplace_predict(X), record.b)
    qmap = QuantileMap.fit(corrected, AlertRateCurve.default())
    return PredictorSpec(
        name="fraud-main",
        version=version,
        model=ModelRef(name=record.name, version=record.version, sha256=record.sha256, format=record.format),
        feature_names=record.feature_names,
        b=record.b,
        missing_policy=policy,
        quantile_map=qmap.to_dict(),
    )


@pytest.fixture
def predictor(registry: ModelRegistry, data) -> Predictor:
    X, booster = data
    record = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=B)
    return Predictor.from_spec(make_spec(record, X, booster), registry.store)


def test_scores_each_stage_of_the_dag(predictor: Predictor, data) -> None:
    X, booster = data
    batch = predictor.score_batch(X[:1000])
    assert np.array_equal(batch.raw, booster.inplace_predict(X[:1000]).astype(np.float64))
    assert np.array_equal(batch.corrected, posterior_correction(batch.raw, B))
    assert np.array_equal(batch.mapped, predictor.quantile_map.transform(batch.corrected))
    assert np.all((batch.mapped >= 0) & (batch.mapped <= 1))
    # the map was fitted on these scores, so the study's curve holds at its edges
    mapped = predictor.score_batch(X).mapped
    curve = AlertRateCurve.default()
    ties = np.unique(mapped, return_counts=True)[1].max() / mapped.size
    for edge, rate in zip(curve.edges, curve.rates, strict=True):
        assert abs(np.mean(mapped >= edge) - rate) <= 0.01 + ties / 2


def test_save_load_scores_bit_identically(predictor: Predictor, registry: ModelRegistry, data, tmp_path: Path) -> None:
    X, _ = data
    path = tmp_path / "predictor.json"
    predictor.save(path)
    clear_booster_cache()
    again = Predictor.load(path, registry.store)
    assert again.id == predictor.id and again.version == "1"
    first, second = predictor.score_batch(X), again.score_batch(X)
    for a, b in ((first.raw, second.raw), (first.corrected, second.corrected), (first.mapped, second.mapped)):
        assert np.array_equal(a.view(np.uint64), b.view(np.uint64))


def test_id_is_a_content_hash(predictor: Predictor, data) -> None:
    spec = predictor.spec
    assert len(predictor.id) == 64
    assert PredictorSpec.from_json(spec.to_json()).id == predictor.id
    assert spec.model_copy(update={"b": 0.3}).id != predictor.id
    assert spec.model_copy(update={"version": "2"}).id != predictor.id
    knots = dict(spec.quantile_map, y=[*spec.quantile_map["y"][:-1], 1.0])
    assert spec.model_copy(update={"quantile_map": knots}).id != predictor.id


def test_deterministic(predictor: Predictor, data) -> None:
    X, _ = data
    assert np.array_equal(predictor.score_batch(X).mapped, predictor.score_batch(X).mapped)


def test_vectorize_follows_model_order(predictor: Predictor, data) -> None:
    X, _ = data
    records = [dict(reversed(list(zip(synthetic.FEATURE_NAMES, row.tolist(), strict=True)))) for row in X[:50]]
    assert np.array_equal(predictor.vectorize(records), X[:50])
    assert np.array_equal(predictor.score_records(records).mapped, predictor.score_batch(X[:50]).mapped)


def test_missing_features_passed_to_xgboost(predictor: Predictor, data) -> None:
    X, _ = data
    records = [dict(zip(synthetic.FEATURE_NAMES, row.tolist(), strict=True)) for row in X[:20]]
    lacking = synthetic.FEATURE_NAMES[5]
    del records[3][lacking]
    matrix = predictor.vectorize(records)
    assert np.isnan(matrix[3, 5]) and np.isnan(matrix).sum() == 1
    batch = predictor.score_records(records)
    expected = X[:20].copy()
    expected[3, 5] = np.nan
    assert np.array_equal(batch.raw, predictor.booster.inplace_predict(expected).astype(np.float64))


def test_missing_features_rejected_with_the_feature_named(registry: ModelRegistry, data) -> None:
    X, booster = data
    record = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=B)
    strict = Predictor.from_spec(make_spec(record, X, booster, policy="reject"), registry.store)
    lacking = synthetic.FEATURE_NAMES[7]
    records = [dict(zip(synthetic.FEATURE_NAMES, row.tolist(), strict=True)) for row in X[:5]]
    del records[2][lacking]
    with pytest.raises(MissingFeatureError, match=f"event 2 lacks '{lacking}'"):
        strict.score_records(records)
    matrix = X[:5].copy()
    matrix[4, 7] = np.nan
    with pytest.raises(MissingFeatureError, match=f"event 4 lacks '{lacking}'"):
        strict.score_batch(matrix)


def test_two_predictors_share_one_booster(registry: ModelRegistry, data) -> None:
    X, booster = data
    record = registry.register(bytes(booster.save_raw("ubj")), name="fraud", version="1", b=B)
    first = Predictor.from_spec(make_spec(record, X, booster, version="1"), registry.store)
    second = Predictor.from_spec(make_spec(record, X[:2000], booster, version="2"), registry.store)
    assert first.id != second.id
    assert first.booster is second.booster
    assert booster_load_counts() == {record.sha256: 1}


def test_wrong_matrix_shape_and_bad_spec_file(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(MuseError, match=r"\(n, 30\)"):
        predictor.score_batch(np.zeros((3, 29), dtype=np.float32))
    bad = tmp_path / "bad.json"
    bad.write_text(predictor.spec.to_json().replace('"b":0.2', '"b":1.5'))
    with pytest.raises(PredictorSpecError, match="bad.json"):
        PredictorSpec.load(bad)
