"""``muse predictors fit`` / ``muse models register`` end to end on small Parquet files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from muse_stream import synthetic
from muse_stream.cli import predictor_commands
from muse_stream.errors import MuseError
from muse_stream.models import FileArtifactStore, clear_booster_cache
from muse_stream.predictors import Predictor
from muse_stream.transforms import AlertRateCurve, QuantileMap, posterior_correction


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="muse")
    predictor_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def registered_store(workdir: Path) -> str:
    """The store holding workdir's model.json registered as fraud version 1 (b = 0.25)."""
    store = str(workdir / "store")
    argv = ["models", "register", str(workdir / "model.json"), "--name", "fraud", "--version", "1", "--b", "0.25"]
    assert run([*argv, "--store", store]) == 0
    return store


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    clear_booster_cache()
    X, y = synthetic.generate_events(3000, seed=5)
    booster = synthetic.train_model(X, y, n_trees=6, max_depth=3, negative_keep_fraction=0.25, seed=5)
    booster.save_model(tmp_path / "model.json")
    columns = {name: X[:, i] for i, name in enumerate(synthetic.FEATURE_NAMES)}
    pq.write_table(pa.table(columns), tmp_path / "features.parquet")
    pq.write_table(pa.table({"score": booster.inplace_predict(X).astype(np.float64)}), tmp_path / "scores.parquet")
    return tmp_path


def test_fit_from_features_writes_a_loadable_predictor(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = registered_store(workdir)
    out = workdir / "predictor.json"
    assert (
        run(["predictors", "fit", str(workdir / "features.parquet"), "--model", "fraud:1", "--store", store, "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "knots fitted on 3000 scores" in printed and "0.3500" in printed
    predictor = Predictor.load(out, FileArtifactStore(store))
    X, _ = synthetic.generate_events(3000, seed=5)
    batch = predictor.score_batch(X)
    assert predictor.spec.b == 0.25
    assert predictor.quantile_map == QuantileMap.fit(posterior_correction(batch.raw, 0.25), AlertRateCurve.default())


def test_fit_from_scores_writes_the_map(workdir: Path) -> None:
    out = workdir / "map.json"
    assert (
        run(
            [
                "predictors",
                "fit",
                str(workdir / "scores.parquet"),
                "--score-column",
                "score",
                "--b",
                "0.25",
                "--curve",
                "0.5:0.2,0.9:0.01",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    qmap = QuantileMap.from_json(out.read_text())
    scores = pq.read_table(workdir / "scores.parquet").column("score").to_numpy()
    expected = QuantileMap.fit(posterior_correction(scores, 0.25), AlertRateCurve.parse("0.5:0.2,0.9:0.01"))
    assert qmap == expected


def test_fit_with_artifact_registers_it(workdir: Path) -> None:
    store = str(workdir / "store")
    out = workdir / "p.json"
    assert (
        run(
            [
                "predictors",
                "fit",
                str(workdir / "features.parquet"),
                "--artifact",
                str(workdir / "model.json"),
                "--b",
                "0.25",
                "--store",
                store,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Predictor.load(out, FileArtifactStore(store)).spec.model.name == "model"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--score-column", "missing"], "no column 'missing'"),
        ([], "say what to fit on"),
        (["--artifact", "nowhere.json"], "needs --b"),
    ],
)
def test_clear_errors(workdir: Path, extra: list[str], message: str) -> None:
    with pytest.raises(MuseError, match=message):
        run(["predictors", "fit", str(workdir / "scores.parquet"), "--store", str(workdir / "s"), *extra])


def test_features_missing_from_the_file_are_named_with_the_columns_found(workdir: Path) -> None:
    store = registered_store(workdir)
    other = workdir / "other.parquet"
    pq.write_table(pa.table({"customer_id": np.arange(500), "amount": np.linspace(1, 500, 500)}), other)
    with pytest.raises(MuseError) as caught:
        run(["predictors", "fit", str(other), "--model", "fraud:1", "--store", store, "--out", str(workdir / "p.json")])
    message = str(caught.value)
    assert f"lacks {len(synthetic.FEATURE_NAMES)} of the model's {len(synthetic.FEATURE_NAMES)} feature columns" in message
    assert synthetic.FEATURE_NAMES[0] in message and "it has: customer_id, amount" in message
    assert "np." not in message and "constant score" not in message
    assert not (workdir / "p.json").exists()


def test_a_constant_score_is_reported_without_numpy_reprs(workdir: Path) -> None:
    constant = workdir / "constant.parquet"
    pq.write_table(pa.table({"score": np.full(2000, 0.0201, dtype=np.float64)}), constant)
    with pytest.raises(MuseError, match=r"all 2000 scores equal 0\.0201;") as caught:
        run(["predictors", "fit", str(constant), "--score-column", "score"])
    assert "np." not in str(caught.value)


@pytest.fixture
def coarse_model(workdir: Path) -> Path:
    """Two trees of depth 2: a handful of distinct scores, too few to reproduce the default curve."""
    X, y = synthetic.generate_events(3000, seed=5)
    booster = synthetic.train_model(X, y, n_trees=2, max_depth=2, negative_keep_fraction=0.25, seed=5)
    booster.save_model(workdir / "coarse.json")
    return workdir / "coarse.json"


def test_a_fit_that_misses_its_targets_is_refused_unless_forced(
    workdir: Path, coarse_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(workdir / "store")
    out = workdir / "coarse-predictor.json"
    fit = [
        "predictors",
        "fit",
        str(workdir / "features.parquet"),
        "--artifact",
        str(coarse_model),
        "--b",
        "0.25",
        "--store",
        store,
        "--out",
        str(out),
    ]
    with pytest.raises(MuseError) as caught:
        run(fit)
    message = str(caught.value)
    assert "misses its target alert rates by more than 10%" in message and "nothing was written" in message
    assert "edge 0.2 at " in message and "against 0.7000" in message and "np." not in message
    assert not out.exists()

    assert run([*fit, "--force"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: the fitted map misses its target alert rates" in captured.err and "edge 0.2 at " in captured.err
    assert Predictor.load(out, FileArtifactStore(store)).spec.model.name == "coarse"

    out.unlink()
    assert run([*fit, "--tolerance", "10"]) == 0 and out.exists()  # a tolerance wide enough passes
