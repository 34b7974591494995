"""run_training end to end on the synthetic market (small, CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.artifacts.artifact import load_artifact, load_model
from shared.cancellation import CancellationToken, CancelledError
from shared.pipeline import validate_request
from shared.pipeline.labels import CLASSES
from shared.pipeline.market import DataError, synthetic_bars
from shared.pipeline.run import run_training
from shared.progress.update import ProgressUpdate, UpdateKind
from shared.rpc import serde
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import (
    DataSource,
    DataSpec,
    IndicatorSpec,
    JobLimits,
    PlacementSpec,
    SpecError,
    TrainingRequest,
    TrainingSpec,
    default_strategy,
)


def _request(
    *,
    epochs: int = 2,
    bars: int = 1200,
    timeframes: tuple[str, ...] = ("1h",),
    symbols: tuple[str, ...] = ("SYNTH",),
    data: DataSpec | None = None,
) -> TrainingRequest:
    strategy = dataclasses.replace(
        default_strategy(), training=TrainingSpec(epochs=epochs, batch_size=64, seed=11)
    )
    return TrainingRequest(
        symbols=symbols,
        timeframes=timeframes,
        strategy=strategy,
        data=data or DataSpec(bars=bars, seed=7),
    )


def test_end_to_end_produces_a_loadable_artifact(tmp_path: Path) -> None:
    updates: list[ProgressUpdate] = []
    outcome = run_training(
        _request(),
        work_dir=tmp_path,
        progress=updates.append,
        cancel=CancellationToken(),
        device="cpu",
    )
    assert outcome.artifact_path == tmp_path / "model.safetensors"
    assert outcome.artifact_path.stat().st_size == outcome.size_bytes
    assert outcome.device == "cpu" and outcome.samples > 1000
    assert len(outcome.feature_names) == len(default_strategy().fuzzy_sets) == 11
    assert set(outcome.feature_importance) == set(outcome.feature_names)

    test = outcome.test_metrics
    rates = {"accuracy", "macro_f1"} | {
        f"{m}_{c}" for m in ("precision", "recall", "f1") for c in CLASSES
    }
    counts = {f"support_{c}" for c in CLASSES} | {
        f"confusion_{t}_{p}" for t in CLASSES for p in CLASSES
    }
    assert set(test) == rates | counts
    assert all(0.0 <= test[k] <= 1.0 for k in rates)
    confusion_total = sum(test[f"confusion_{t}_{p}"] for t in CLASSES for p in CLASSES)
    assert confusion_total == sum(test[f"support_{c}"] for c in CLASSES) > 0
    train = outcome.train_metrics
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epochs_run", "learning_rate"} <= set(
        train
    )
    assert train["epochs_run"] == 2 and train["learning_rate"] == pytest.approx(1e-3)

    percentages = [u.percentage for u in updates]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    kinds = {u.kind for u in updates}
    assert {UpdateKind.STEP, UpdateKind.DETAIL, UpdateKind.EPOCH} <= kinds
    steps = [u for u in updates if u.kind is UpdateKind.STEP]
    assert len(steps) == 24 and [u.step_index for u in steps[::2]] == list(range(1, 13))
    assert any(u.message.startswith("Processing SYNTH (1/1) [1h] - Computing RSI") for u in updates)

    loaded = load_model(outcome.artifact_path)
    meta = loaded.metadata
    assert loaded.classes == CLASSES and loaded.feature_names == outcome.feature_names
    assert meta["symbols"] == ["SYNTH"] and meta["timeframes"] == ["1h"]
    assert meta["seed"] == 11 and meta["versions"]["trainwire"]
    assert meta["test_metrics"] == pytest.approx(dict(test))
    assert np.asarray(meta["confusion_matrix"]).sum() == meta["samples"]["test"]
    assert meta["data_range"]["start"] < meta["data_range"]["end"]
    assert meta["model"]["input_dim"] == 11 and meta["model"]["hidden_layers"] == [64, 32]
    assert loaded.predict(np.zeros((3, 11))).shape == (3,)


def test_same_request_gives_bit_identical_weights(tmp_path: Path) -> None:
    request = _request(epochs=2, bars=800)
    first = run_training(
        request,
        work_dir=tmp_path / "a",
        progress=lambda u: None,
        cancel=CancellationToken(),
        device="cpu",
    )
    second = run_training(
        request,
        work_dir=tmp_path / "b",
        progress=lambda u: None,
        cancel=CancellationToken(),
        device="cpu",
    )
    a, _ = load_artifact(first.artifact_path)
    b, _ = load_artifact(second.artifact_path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.sha256 == second.sha256  # the metadata is deterministic too


def test_cancel_at_first_batch_leaves_no_artifact(tmp_path: Path) -> None:
    token = CancellationToken()
    seen: list[ProgressUpdate] = []

    def sink(update: ProgressUpdate) -> None:
        seen.append(update)
        if update.kind is UpdateKind.BATCH:
            token.cancel("stop")

    # 2400 bars at batch size 64: ~26 batches per epoch, so the first BATCH update (after the
    # initial stride of 10) comes mid-epoch
    request = _request(epochs=3, bars=2400)
    with pytest.raises(CancelledError, match="stop"):
        run_training(request, work_dir=tmp_path, progress=sink, cancel=token)
    assert [u.kind for u in seen].count(UpdateKind.BATCH) == 1
    assert not any(u.kind is UpdateKind.EPOCH for u in seen)
    assert not (tmp_path / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".tmp", ".safetensors")]


def test_cancel_before_start(tmp_path: Path) -> None:
    token = CancellationToken()
    token.cancel("early")
    with pytest.raises(CancelledError):
        run_training(_request(), work_dir=tmp_path, progress=lambda u: None, cancel=token)
    assert not (tmp_path / "model.safetensors").exists()


def test_missing_csv_names_symbol_and_timeframe(tmp_path: Path) -> None:
    request = _request(data=DataSpec(source=DataSource.DIRECTORY, path="market"))
    (tmp_path / "market").mkdir()
    with pytest.raises(DataError) as info:
        run_training(
            request,
            work_dir=tmp_path / "work",
            progress=lambda u: None,
            cancel=CancellationToken(),
            data_dir=tmp_path,
        )
    assert (info.value.symbol, info.value.timeframe) == ("SYNTH", "1h")
    assert "SYNTH [1h]" in str(info.value)
    assert not (tmp_path / "work" / "model.safetensors").exists()


def test_multi_timeframe_and_multi_symbol(tmp_path: Path) -> None:
    request = _request(epochs=1, bars=1600, timeframes=("1h", "4h"), symbols=("AAA", "BBB"))
    outcome = run_training(
        request,
        work_dir=tmp_path,
        progress=lambda u: None,
        cancel=CancellationToken(),
        device="cpu",
    )
    assert len(outcome.feature_names) == 2 * len(default_strategy().fuzzy_sets) == 22
    assert "rsi_14:oversold@4h" in outcome.feature_names
    meta = load_model(outcome.artifact_path).metadata
    assert set(meta["data_range"]["symbols"]) == {"AAA", "BBB"}


def test_too_little_history_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="provide more bars"):
        run_training(
            _request(bars=200, timeframes=("1h", "1d")),
            work_dir=tmp_path,
            progress=lambda u: None,
            cancel=CancellationToken(),
            device="cpu",
        )


def test_validation_errors_name_the_field() -> None:
    bad_param = dataclasses.replace(
        default_strategy(),
        indicators=(
            IndicatorSpec(id="rsi_14", type="rsi", params={"length": 3}),
            *default_strategy().indicators[1:],
        ),
    )
    request = dataclasses.replace(_request(), strategy=bad_param)
    with pytest.raises(SpecError) as info:
        validate_request(request)
    assert info.value.field == "strategy.indicators[0].params.length"

    with pytest.raises(SpecError) as info:
        validate_request(_request(timeframes=("1h", "90m")))
    assert info.value.field == "timeframes[1]"

    with pytest.raises(SpecError) as info:
        validate_request(_request(data=DataSpec(start="2021-01-01", end="2020-01-01")))
    assert info.value.field == "data.end"

    with pytest.raises(SpecError) as info:
        validate_request(dataclasses.replace(_request(), symbols=()))
    assert info.value.field == "symbols"


def test_unavailable_requested_device_is_a_spec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    request = dataclasses.replace(_request(), placement=PlacementSpec(device="cuda:1"))
    with pytest.raises(SpecError) as info:
        run_training(
            request, work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
        )
    assert info.value.field == "placement.device"


def test_requested_device_passed_as_override_is_still_a_spec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer passes ``placement.device or its own`` as ``device``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    request = dataclasses.replace(_request(), placement=PlacementSpec(device="cuda"))
    with pytest.raises(SpecError) as info:
        run_training(
            request,
            work_dir=tmp_path,
            progress=lambda u: None,
            cancel=CancellationToken(),
            device="cuda",
        )
    assert info.value.field == "placement.device"
    with pytest.raises(ValueError, match="not available") as err:
        run_training(
            _request(),
            work_dir=tmp_path,
            progress=lambda u: None,
            cancel=CancellationToken(),
            device="cuda:2",
        )
    assert not isinstance(err.value, SpecError)


def test_a_directory_job_loading_more_than_max_bars_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "market"
    folder.mkdir()
    for symbol in ("AAA", "BBB"):
        synthetic_bars(symbol, "1h", 600, 1).to_csv(folder / f"{symbol}_1h.csv")
    request = _request(
        symbols=("AAA", "BBB"), data=DataSpec(source=DataSource.DIRECTORY, path="market")
    )
    with pytest.raises(DataError, match="more than 1,000 bars together") as info:
        run_training(
            request,
            work_dir=tmp_path / "work",
            progress=lambda u: None,
            cancel=CancellationToken(),
            data_dir=tmp_path,
            limits=JobLimits(max_bars=1000),
        )
    assert "max_bars" in str(info.value)
    assert not (tmp_path / "work" / "model.safetensors").exists()


def test_run_training_refuses_a_model_over_the_parameter_limit(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        run_training(
            _request(),
            work_dir=tmp_path,
            progress=lambda u: None,
            cancel=CancellationToken(),
            limits=JobLimits(max_parameters=1000),
        )
    assert info.value.field == "strategy.model.hidden_layers"
    assert not (tmp_path / "model.safetensors").exists()


def test_training_data_dates_from_strategy_yaml_bound_the_trained_range(tmp_path: Path) -> None:
    text = (
        Path(__file__).resolve().parents[2] / "strategies" / "rsi_mean_reversion.yaml"
    ).read_text()
    text = text.replace(
        "training_data:\n",
        "training_data:\n  start: 2020-01-15\n  end: '2020-02-14T23:00:00Z'\n",
        1,
    )
    assert "start: 2020-01-15" in text
    message = spb.TrainRequest(strategy_yaml=text, data=spb.DataSpec(bars=2000))
    request = serde.request_from_proto(message)
    request = dataclasses.replace(
        request,
        strategy=dataclasses.replace(request.strategy, training=TrainingSpec(epochs=1)),
    )
    outcome = run_training(
        request, work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
    )
    data_range = load_model(outcome.artifact_path).metadata["data_range"]
    # Warm-up rows are dropped after the start; nothing lies outside the window.
    assert "2020-01-15" <= data_range["start"] < "2020-01-20"
    assert data_range["end"] <= "2020-02-14T23:00:00+00:00"


def test_early_stopping_is_on_by_default_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    message = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    message.strategy.training.epochs = 300
    message.strategy.training.learning_rate = 0.01
    message.data.bars = 1200
    request = serde.request_from_proto(message)
    assert request.strategy.training.early_stopping_patience == 5
    outcome = run_training(
        request, work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
    )
    train = outcome.train_metrics
    assert train["epochs_run"] < 300  # the validation loss stopped improving
    assert load_model(outcome.artifact_path).metadata["stopped_early"] is True
    assert train["best_epoch"] == train["epochs_run"] - 5
    assert train["val_loss"] == min(
        m["val_loss"] for m in load_model(outcome.artifact_path).metadata["history"]
    )
