"""Honest results on real market files: degenerate labels fail, thresholds calibrate, and every
model stands beside its majority-class baseline — through ``run_training`` and over gRPC.

The files are the real OHLCV series the ``backtesting`` package ships (hourly EURUSD 2017-2018,
daily GOOG 2004-2013), rewritten with a ``timestamp`` column into a data directory as
``{SYMBOL}_{timeframe}.csv``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import backtesting  # type: ignore[import-untyped, unused-ignore]
import pandas as pd
import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.artifacts.artifact import load_artifact
from shared.artifacts.metadata import assessment_from_json
from shared.cancellation import CancellationToken
from shared.pipeline.market import DataError
from shared.pipeline.run import TrainingOutcome, run_training
from shared.progress.update import ProgressUpdate
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import (
    DataSource,
    DataSpec,
    LabelSpec,
    TrainingRequest,
    TrainingSpec,
    default_strategy,
)

pytestmark = pytest.mark.timeout(300)

_REAL = Path(backtesting.__file__).parent / "test"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("market")
    for source, name in (("EURUSD.csv", "EURUSD_1h.csv"), ("GOOG.csv", "GOOG_1d.csv")):
        frame = pd.read_csv(_REAL / source, index_col=0, parse_dates=True)
        frame.to_csv(folder / name, index_label="timestamp")
    return folder


def _request(symbol: str, timeframe: str, labels: LabelSpec | None = None) -> TrainingRequest:
    strategy = dataclasses.replace(
        default_strategy(),
        labels=labels or LabelSpec(),
        training=TrainingSpec(epochs=2, batch_size=64, seed=3),
    )
    return TrainingRequest(
        symbols=(symbol,),
        timeframes=(timeframe,),
        strategy=strategy,
        data=DataSpec(source=DataSource.DIRECTORY, path="."),
    )


def _train(
    request: TrainingRequest,
    data_dir: Path,
    work: Path,
    updates: list[ProgressUpdate] | None = None,
) -> TrainingOutcome:
    sink = updates.append if updates is not None else (lambda u: None)
    return run_training(
        request,
        work_dir=work,
        progress=sink,
        cancel=CancellationToken(),
        data_dir=data_dir,
        device="cpu",
    )


def _suggested(message: str) -> float:
    found = re.search(
        r"threshold ([0-9.e-]+) would label about 60% of the ([0-9,]+) training", message
    )
    assert found, message
    return float(found.group(1))


def test_hourly_eurusd_at_the_default_threshold_fails_with_counts_and_a_threshold_that_works(
    data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as caught:
        _train(_request("EURUSD", "1h"), data_dir, tmp_path / "a")
    message = str(caught.value)
    assert message.startswith("EURUSD [1h]: unusable labels: zigzag labels at threshold 0.02")
    assert "SELL (nearly) absent: train 0 of" in message
    assert "BUY (nearly) absent: train 0 of" in message
    assert re.search(r"class counts: train SELL 0, HOLD \d+, BUY 0; validation SELL 0", message)
    assert not (tmp_path / "a" / "model.safetensors").exists()

    suggested = _suggested(message)
    assert 0.0005 < suggested < 0.01  # hourly FX moves a few tenths of a percent in 20 bars
    labels = LabelSpec(threshold=suggested)
    outcome = _train(_request("EURUSD", "1h", labels), data_dir, tmp_path / "b")
    support = outcome.assessment.class_support if outcome.assessment else {}
    assert min(support.values()) >= 5, support


def test_daily_goog_at_the_default_threshold_has_almost_no_hold(
    data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as caught:
        _train(_request("GOOG", "1d"), data_dir, tmp_path)
    message = str(caught.value)
    assert "HOLD (nearly) absent" in message and "SELL (nearly)" not in message
    assert _suggested(message) > 0.02  # a daily stock swings more than 2 % in 20 days


@pytest.mark.parametrize(("symbol", "timeframe"), [("EURUSD", "1h"), ("GOOG", "1d")])
def test_auto_threshold_calibrates_records_and_is_assessed(
    symbol: str, timeframe: str, data_dir: Path, tmp_path: Path
) -> None:
    updates: list[ProgressUpdate] = []
    request = _request(symbol, timeframe, LabelSpec(auto_threshold=True))
    outcome = _train(request, data_dir, tmp_path, updates)

    _, metadata = load_artifact(outcome.artifact_path)
    labels = metadata["labels"]
    assert labels["calibrated"] is True and labels["auto_threshold"] is True
    assert labels["threshold"] == labels["suggested_threshold"] != labels["requested_threshold"]
    labelling = [u.message for u in updates if u.step_index == 5]
    calibrated = f"Calibrated zigzag threshold {labels['threshold']:g} from "
    assert any(m.startswith(calibrated) for m in labelling), labelling

    result = outcome.assessment
    assert result is not None and assessment_from_json(metadata["assessment"]) == result
    assert min(result.class_support.values()) >= 5
    assert result.lift_points == pytest.approx(100 * (result.accuracy - result.baseline_accuracy))
    word = "beats" if result.beats_baseline else "does not beat"
    assert result.verdict.startswith(f"{word} always predicting {result.baseline_class} ")


@pytest.fixture
async def stub(
    tmp_path: Path, data_dir: Path
) -> AsyncIterator[orchestrator_pb2_grpc.OrchestratorAsyncStub]:
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", data_dir=data_dir)
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0", nodes=(trainer.address,), state_dir=tmp_path / "state"
        )
    )
    channel = plumbing.create_channel(orchestrator.address)
    try:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)
    finally:
        await channel.close(None)
        await orchestrator.stop(0)
        await trainer.stop(0)


def _wire_request(symbol: str, timeframe: str, source: int) -> spb.TrainRequest:
    request = spb.TrainRequest(symbols=[symbol], timeframes=[timeframe])
    request.strategy.training.epochs = 1
    request.data.source = source  # type: ignore[assignment]
    if source == spb.DATA_SOURCE_KIND_DIRECTORY:
        request.data.path = "."
    else:
        request.data.bars = 1500
    return request


async def test_degenerate_labels_fail_the_job_as_a_data_error(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub,
) -> None:
    events = [
        e async for e in stub.Train(_wire_request("EURUSD", "1h", spb.DATA_SOURCE_KIND_DIRECTORY))
    ]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_FAILED, last
    assert last.error.code == "DATA_ERROR"
    assert "unusable labels" in last.error.message and "HOLD" in last.error.message
    assert not last.result.HasField("model")


async def test_the_terminal_event_carries_the_assessment(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub,
) -> None:
    events = [
        e async for e in stub.Train(_wire_request("SYNTH", "1h", spb.DATA_SOURCE_KIND_SYNTHETIC))
    ]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last
    result = last.result.assessment
    assert result.verdict and result.baseline_class in {"SELL", "HOLD", "BUY"}
    assert result.accuracy == pytest.approx(last.result.test_metrics["accuracy"])
    assert sum(result.class_support.values()) == sum(
        last.result.test_metrics[f"support_{c}"] for c in ("SELL", "HOLD", "BUY")
    )
    assert any(result.verdict in e.message for e in events if e.kind == ppb.EVENT_KIND_DETAIL)


def test_an_identical_retrain_is_byte_identical_wherever_its_folders_are(
    data_dir: Path, tmp_path: Path
) -> None:
    """Same request, same file, same device: the same sha256, so a repository can tell an
    identical retrain by it (no wall-clock time or absolute path in the artifact)."""
    request = _request("GOOG", "1d", LabelSpec(auto_threshold=True))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "GOOG_1d.csv").write_bytes((data_dir / "GOOG_1d.csv").read_bytes())
    first = _train(request, data_dir, tmp_path / "a")
    second = _train(request, moved, tmp_path / "b" / "deeper")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "deeper" / "model.safetensors"
    ).read_bytes()
