"""Signals from a downloaded model: ``predict`` runs the training pipeline's own steps, and the
numpy + safetensors recipe in ``docs/reproduce_prediction.md`` gives the same answer."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backtesting  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pandas as pd
import pytest

from shared.artifacts.artifact import load_artifact
from shared.cancellation import CancellationToken
from shared.pipeline.labels import CLASSES, make_labels
from shared.pipeline.market import resample_bars
from shared.pipeline.predict import PredictionError, predict, predict_file
from shared.pipeline.run import run_training
from shared.pipeline.synthetic import synthetic_bars
from shared.spec import (
    DataSource,
    DataSpec,
    IndicatorSpec,
    LabelSpec,
    TrainingRequest,
    TrainingSpec,
    default_strategy,
)

_DOC = Path(__file__).parents[2] / "docs" / "reproduce_prediction.md"
_BARS = 1500


def _download(work: Path, dest: Path) -> Path:
    """What ``trainwire models download`` leaves: the weights and metadata.json beside them."""
    dest.mkdir(parents=True)
    (dest / "model.safetensors").write_bytes((work / "model.safetensors").read_bytes())
    _, metadata = load_artifact(work / "model.safetensors")
    (dest / "metadata.json").write_text(json.dumps({**metadata, "repository": {"version": 1}}))
    return dest


def _train(
    tmp: Path, request: TrainingRequest, data_dir: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    work = tmp / "work"
    run_training(
        request,
        work_dir=work,
        progress=lambda u: None,
        cancel=CancellationToken(),
        data_dir=data_dir,
        device="cpu",
    )
    model = _download(work, tmp / "model")
    return model, load_artifact(model / "model.safetensors")[1]


def _synth_request(timeframes: tuple[str, ...], **strategy: Any) -> TrainingRequest:
    spec = dataclasses.replace(
        default_strategy(), training=TrainingSpec(epochs=1, batch_size=64, seed=2), **strategy
    )
    return TrainingRequest(
        symbols=("SYNTH",),
        timeframes=timeframes,
        strategy=spec,
        data=DataSpec(source=DataSource.SYNTHETIC, bars=_BARS, seed=7),
    )


@pytest.fixture(scope="module", params=[("1h",), ("1h", "4h")], ids=["1h", "1h+4h"])
def synth_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, Any], pd.DataFrame]]:
    timeframes: tuple[str, ...] = request.param
    # One indicator with its parameters left out (rsi: {}): the metadata must resolve them.
    strategy = default_strategy()
    indicators = (IndicatorSpec(id="rsi_14", type="rsi"), *strategy.indicators[1:])
    model, metadata = _train(
        tmp_path_factory.mktemp("synth"), _synth_request(timeframes, indicators=indicators)
    )
    yield model, metadata, synthetic_bars("SYNTH", "1h", _BARS, 7)


def _test_accuracy(
    signals: pd.DataFrame, base: pd.DataFrame, labels: LabelSpec, n_test: int
) -> float:
    """Accuracy of ``signals`` on the last ``n_test`` labelled rows: the run's test split."""
    truth = pd.Series(make_labels(labels, base["close"].to_numpy()), index=base.index)
    y = truth.loc[pd.DatetimeIndex(signals["time"])].to_numpy()
    predicted = signals["signal"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    labelled = y >= 0
    return float((y[labelled][-n_test:] == predicted[labelled][-n_test:]).mean())


def test_predict_on_the_training_bars_scores_the_runs_test_accuracy(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    model, metadata, bars = synth_model
    signals = predict(model, bars)

    assert list(signals.columns) == ["time", "known_at", "signal"] + [f"prob_{c}" for c in CLASSES]
    assert len(signals) == metadata["samples"]["total"] + default_strategy().labels.lookahead
    probabilities = signals[[f"prob_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (signals["known_at"] - signals["time"] == pd.Timedelta(hours=1)).all()
    accuracy = _test_accuracy(signals, bars, LabelSpec(), metadata["samples"]["test"])
    assert accuracy == pytest.approx(metadata["test_metrics"]["accuracy"], abs=1e-12)


def test_the_metadata_resolves_parameters_left_out(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    _, metadata, _ = synth_model
    assert metadata["strategy"]["indicators"][0]["params"] == {}
    described = metadata["reproduce"]["indicators"][0]
    assert described == {
        "id": "rsi_14",
        "type": "rsi",
        "params": {"period": 14},
        "outputs": {"value": described["outputs"]["value"]},
    }
    assert "Wilder(period" in described["outputs"]["value"]


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _DOC.read_text(encoding="utf-8"), flags=re.S)


def _example() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(_blocks()[0], str(_DOC), "exec"), namespace)
    return namespace


def test_the_documented_recipe_needs_only_numpy_and_safetensors() -> None:
    tree = ast.parse(_blocks()[0])
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"json", "pathlib", "numpy", "safetensors"}


def test_the_documented_recipe_reproduces_predict(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    model, _, bars = synth_model
    expected = predict(model, bars)

    times = bars.index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
    columns = {c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")}
    when, signals, probabilities = _example()["predict"](model, times, columns)

    expected_times = expected["time"].dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    assert np.array_equal(when, expected_times)
    assert signals == expected["signal"].tolist()
    want = expected[[f"prob_{c}" for c in CLASSES]].to_numpy()
    assert np.abs(probabilities - want).max() < 1e-6


def test_the_documented_csv_reading_runs(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model, _, bars = synth_model
    (tmp_path / "models" / "default_fuzzy_mlp").mkdir(parents=True)
    os.symlink(model, tmp_path / "models" / "default_fuzzy_mlp" / "EURUSD_1h_v1")
    bars.rename(columns=str.capitalize).to_csv(tmp_path / "EURUSD_1h.csv", index_label="timestamp")
    namespace = _example()
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks()[1], str(_DOC), "exec"), namespace)
    assert namespace["signals"] == predict(model, bars)["signal"].tolist()


@pytest.fixture(scope="module")
def goog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("goog")
    frame = pd.read_csv(Path(backtesting.__file__).parent / "test" / "GOOG.csv", index_col=0)
    frame.to_csv(folder / "GOOG_1d.csv", index_label="timestamp")
    return folder


@pytest.mark.parametrize("timeframes", [("1d",), ("1d", "1w")], ids=["1d", "1d+1w"])
def test_predict_file_on_a_real_file_scores_the_runs_test_accuracy(
    timeframes: tuple[str, ...], goog_dir: Path, tmp_path: Path
) -> None:
    """Daily GOOG, the weekly bars resampled from the same file as the trainer did."""
    labels = LabelSpec(threshold=0.08)  # daily GOOG swings far more than the 2 % default
    spec = dataclasses.replace(
        default_strategy(), labels=labels, training=TrainingSpec(epochs=1, seed=4)
    )
    request = TrainingRequest(
        symbols=("GOOG",),
        timeframes=timeframes,
        strategy=spec,
        data=DataSpec(source=DataSource.DIRECTORY, path="."),
    )
    model, metadata = _train(tmp_path, request, goog_dir)

    signals = predict_file(model, goog_dir / "GOOG_1d.csv")
    bars = pd.read_csv(goog_dir / "GOOG_1d.csv", index_col=0, parse_dates=True)
    bars.index = bars.index.tz_localize("UTC")
    bars = bars.rename(columns=str.lower)
    accuracy = _test_accuracy(signals, bars, labels, metadata["samples"]["test"])
    assert accuracy == pytest.approx(metadata["test_metrics"]["accuracy"], abs=1e-12)


def test_predict_file_resamples_finer_bars_and_refuses_coarser_ones(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame], tmp_path: Path
) -> None:
    model, _, bars = synth_model
    minutes = pd.date_range("2020-01-01", periods=6 * 300, freq="10min", tz="UTC")
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, len(minutes))))
    fine = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0},
        index=minutes,
    )
    fine.to_csv(tmp_path / "fine.csv", index_label="timestamp")
    from_file = predict_file(model, tmp_path / "fine.csv")
    hourly = resample_bars(fine, "10m", "1h")
    assert from_file["signal"].tolist() == predict(model, hourly)["signal"].tolist()

    resample_bars(bars, "1h", "1d").to_csv(tmp_path / "daily.csv", index_label="timestamp")
    with pytest.raises(PredictionError, match="holds 1d bars; this model needs 1h bars"):
        predict_file(model, tmp_path / "daily.csv")


def test_bad_inputs_say_what_to_change(
    synth_model: tuple[Path, dict[str, Any], pd.DataFrame], tmp_path: Path
) -> None:
    model, _, bars = synth_model
    with pytest.raises(PredictionError, match=r"no model\.safetensors in"):
        predict(tmp_path, bars)
    with pytest.raises(PredictionError, match="lack column"):
        predict(model, bars.drop(columns=["volume"]))
    with pytest.raises(PredictionError, match="DatetimeIndex"):
        predict(model, bars.reset_index(drop=True))
    with pytest.raises(PredictionError, match="time order"):
        predict(model, bars.iloc[::-1])
    with pytest.raises(PredictionError, match="no such data file"):
        predict_file(model, tmp_path / "missing.csv")
