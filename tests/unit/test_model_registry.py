"""Model registry and artifact store: content addressing, refusals, one parse per process."""

from __future__ import annotations

from pathlib import Path

import pytest
import xgboost

from muse_stream import synthetic
from muse_stream.models import (
    ArtifactError,
    FileArtifactStore,
    ModelRegistry,
    booster_load_counts,
    clear_booster_cache,
    load_booster,
    open_store,
)


@pytest.fixture(scope="module")
def booster() -> xgboost.Booster:
    X, y = synthetic.generate_events(3000, seed=7)
    return synthetic.train_model(X, y, n_trees=4, max_depth=3, negative_keep_fraction=0.2, seed=7)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    clear_booster_cache()
    return ModelRegistry(FileArtifactStore(tmp_path / "store"))


@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_register_and_load_both_formats(registry: ModelRegistry, booster: xgboost.Booster, fmt: str) -> None:
    data = bytes(booster.save_raw(raw_format=fmt))
    record = registry.register(data, name="fraud", version="1", b=0.2)
    assert record.format == fmt and record.b == 0.2
    assert record.feature_names == tuple(synthetic.FEATURE_NAMES)
    assert registry.get("fraud", "1") == record == registry.resolve("fraud:1")
    assert registry.store.get(record.sha256) == data
    loaded = registry.load(record)
    assert loaded.num_boosted_rounds() == booster.num_boosted_rounds()


def test_artifact_written_atomically_and_content_addressed(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/s")
    digest = store.put(b"hello")
    assert store.exists(digest) and store.get(digest) == b"hello"
    assert store.location(digest).parent.name == digest[:2]
    assert store.put(b"hello") == digest
    assert not list(store.location(digest).parent.glob("*.tmp"))


def test_corrupt_artifact_refused_and_good_version_stays(
    registry: ModelRegistry, booster: xgboost.Booster, tmp_path: Path
) -> None:
    good = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=0.2)
    corrupt = tmp_path / "broken.json"
    corrupt.write_bytes(b'{"learner": nonsense')
    with pytest.raises(ArtifactError, match="broken.json"):
        registry.register(corrupt, name="fraud", version="2", b=0.2)
    with pytest.raises(ArtifactError, match="already registered"):
        registry.register(bytes(booster.save_raw("ubj")), name="fraud", version="1", b=0.2)
    assert registry.find("fraud", "2") is None
    assert registry.get("fraud", "1") == good
    assert registry.load(good).num_features() == len(synthetic.FEATURE_NAMES)


def test_corrupted_file_on_disk_is_named_and_does_not_evict_cached_booster(
    registry: ModelRegistry, booster: xgboost.Booster
) -> None:
    record = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=0.2)
    first = registry.load(record)
    path = registry.store.location(record.sha256)
    path.write_bytes(path.read_bytes()[:-10])
    assert registry.load(record) is first  # the good parse stays in use
    clear_booster_cache()
    with pytest.raises(ArtifactError, match=str(path)):
        registry.load(record)


def test_feature_names_that_disagree_are_refused(registry: ModelRegistry, booster: xgboost.Booster) -> None:
    wrong = list(synthetic.FEATURE_NAMES)
    wrong[3] = "something_else"
    with pytest.raises(ArtifactError, match="feature names disagree"):
        registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=0.2, feature_names=wrong)
    record = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=0.2)
    with pytest.raises(ArtifactError, match="column 3"):
        load_booster(record.sha256, registry.store, feature_names=tuple(wrong))


def test_non_probability_objective_and_bad_b_refused(registry: ModelRegistry) -> None:
    X, y = synthetic.generate_events(500, seed=1)
    regression = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 2},
        xgboost.DMatrix(X, label=y, feature_names=list(synthetic.FEATURE_NAMES)),
        2,
    )
    with pytest.raises(ArtifactError, match="objective"):
        registry.register(bytes(regression.save_raw("json")), name="reg", version="1", b=1.0)


def test_invalid_b_refused(registry: ModelRegistry, booster: xgboost.Booster) -> None:
    with pytest.raises(ArtifactError, match="b="):
        registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=1.5)


def test_model_parsed_once_per_process(registry: ModelRegistry, booster: xgboost.Booster) -> None:
    record = registry.register(bytes(booster.save_raw("json")), name="fraud", version="1", b=0.2)
    boosters = [load_booster(record.sha256, registry.store) for _ in range(3)]
    assert all(b is boosters[0] for b in boosters)
    assert booster_load_counts() == {record.sha256: 1}


def test_missing_artifact_and_unsafe_names(registry: ModelRegistry, booster: xgboost.Booster) -> None:
    with pytest.raises(ArtifactError, match="not in the store"):
        registry.store.get("0" * 64)
    with pytest.raises(ArtifactError, match="model name"):
        registry.register(bytes(booster.save_raw("json")), name="../evil", version="1", b=0.2)
    with pytest.raises(ArtifactError, match="NAME:VERSION"):
        registry.resolve("fraud")
