"""What crosses the wire comes back equal: results with their data provenance and assessment,
model refs, datasets, and requests with the dataset source, timezone and auto threshold."""

from __future__ import annotations

from dataclasses import replace

from shared import spec
from shared.datasets import DatasetFile, DatasetInfo
from shared.jobs import DataProvenance, ModelAssessment, ModelRef, SeriesProvenance, TrainResult
from shared.rpc import serde

PROVENANCE = DataProvenance(
    source="dataset",
    location="eurusd@0123456789ab",
    timezone="America/New_York",
    series=(
        SeriesProvenance(
            symbol="EURUSD",
            timeframe="4h",
            file="EURUSD.csv",
            start=1_600_000_000.0,
            end=1_700_000_000.0,
            rows=2_500,
            resampled_from="1h",
        ),
    ),
)
ASSESSMENT = ModelAssessment(
    accuracy=0.61,
    macro_f1=0.42,
    class_support={"BUY": 10, "HOLD": 80, "SELL": 12},
    baseline_class="HOLD",
    baseline_accuracy=0.63,
    lift_points=-2.0,
    beats_baseline=False,
    verdict="does not beat always predicting HOLD (0.61 vs 0.63)",
)


def test_a_result_with_provenance_and_assessment_round_trips() -> None:
    ref = ModelRef(
        name="s/EURUSD_4h_v1",
        strategy="s",
        version=1,
        sha256="ab" * 32,
        size_bytes=10,
        symbols=("EURUSD",),
        timeframes=("4h",),
        created_at=1_700_000_000.0,
        job_id="j1",
        data=PROVENANCE,
        assessment=ASSESSMENT,
    )
    result = TrainResult(model=ref, data=PROVENANCE, assessment=ASSESSMENT, device="cpu")
    assert serde.result_from_proto(serde.result_to_proto(result)) == result
    bare = replace(ref, data=None, assessment=None)
    assert serde.model_ref_from_proto(serde.model_ref_to_proto(bare)) == bare
    assert PROVENANCE.rows == 2_500 and PROVENANCE.start == 1_600_000_000.0


def test_a_dataset_round_trips() -> None:
    info = DatasetInfo(
        name="eurusd",
        sha256="cd" * 32,
        created_at=1_700_000_000.0,
        files=(
            DatasetFile(
                filename="EURUSD.csv",
                symbol="EURUSD",
                timeframe="1h",
                sha256="ef" * 32,
                size_bytes=1234,
                rows=100,
                start=1.0,
                end=2.0,
            ),
        ),
    )
    message = serde.dataset_to_proto(info)
    assert message.size_bytes == 1234
    assert serde.dataset_from_proto(message) == info


def test_a_dataset_request_keeps_its_source_timezone_and_auto_threshold() -> None:
    request = spec.TrainingRequest(
        symbols=("EURUSD",),
        timeframes=("1h",),
        strategy=replace(
            spec.default_strategy(), labels=spec.LabelSpec(auto_threshold=True, lookahead=10)
        ),
        data=spec.DataSpec(
            source=spec.DataSource.DATASET,
            dataset="eurusd",
            dataset_sha256="cd" * 32,
            timezone="Europe/Berlin",
        ),
    )
    back = serde.request_from_proto(serde.request_to_proto(request))
    assert back == request


def test_early_stopping_is_on_unless_a_request_turns_it_off_with_zero() -> None:
    from shared.rpc.v1 import strategy_pb2 as spb

    absent = serde.strategy_from_proto(spb.StrategySpec())
    off = serde.strategy_from_proto(
        spb.StrategySpec(training=spb.TrainingSpec(early_stopping_patience=0))
    )
    assert absent.training.early_stopping_patience == spec.TrainingSpec().early_stopping_patience
    assert absent.training.early_stopping_patience > 0
    assert off.training.early_stopping_patience == 0
