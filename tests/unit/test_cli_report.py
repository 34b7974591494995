"""How results read: every model beside its baseline and named by its data; tables uncut."""

from __future__ import annotations

from datetime import UTC, datetime

from services import report
from shared.client import ModelInfo
from shared.jobs import DataProvenance, ModelAssessment, ModelRef, SeriesProvenance, TrainResult
from shared.nodes import DeviceKind, NodeDevice, NodeHealth, NodeInfo, NodeStatus


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


EURUSD = DataProvenance(
    source="directory",
    location="fx",
    series=(
        SeriesProvenance(symbol="EURUSD", timeframe="1h", file="EURUSD.csv",
                         start=ts("2017-04-19T09:00"), end=ts("2018-02-07T15:00"), rows=5000),
        SeriesProvenance(symbol="EURUSD", timeframe="4h", file="EURUSD.csv",
                         start=ts("2017-04-19T08:00"), end=ts("2018-02-07T12:00"), rows=1251,
                         resampled_from="1h"),
    ),
)  # fmt: skip
NO_LIFT = ModelAssessment(
    accuracy=0.412, macro_f1=0.301, class_support={"SELL": 120, "HOLD": 410, "BUY": 212},
    baseline_class="HOLD", baseline_accuracy=0.553, lift_points=-14.1, beats_baseline=False,
)  # fmt: skip
REF = ModelRef(name="default_fuzzy_mlp/EURUSD_1h_4h_v2", strategy="default_fuzzy_mlp", version=2,
               sha256="ab" * 32, size_bytes=25_228, symbols=("EURUSD",), timeframes=("1h", "4h"),
               created_at=ts("2026-01-05T10:00"), data=EURUSD, assessment=NO_LIFT)  # fmt: skip


def test_the_train_summary_names_the_data_and_the_baseline() -> None:
    lines = report.result_summary(TrainResult(model=REF, data=EURUSD, assessment=NO_LIFT))
    text = "\n".join(lines)
    assert lines[0] == "Model stored: default_fuzzy_mlp/EURUSD_1h_4h_v2 (v2, 25,228 bytes)"
    assert "Data: directory fx · 2017-04-19 08:00 → 2018-02-07 15:00 · 6,251 rows" in text
    assert "EURUSD 4h: EURUSD.csv (from 1h) · 2017-04-19 08:00" in text
    assert "timestamps without a zone read as UTC" in text
    assert "test accuracy 0.412 · macro F1 0.301" in text
    assert "test support: SELL 120, HOLD 410, BUY 212" in text
    assert "baseline (always HOLD) 0.553 · lift -14.1 points" in text
    # No verdict from the trainer: one is made from the numbers, in words.
    assert "verdict: does not beat always predicting HOLD (0.412 vs 0.553)" in text


def test_a_model_without_an_assessment_says_it_cannot_be_judged() -> None:
    text = "\n".join(report.result_summary(TrainResult(test_metrics={"accuracy": 0.5})))
    assert "Data: data source not recorded" in text
    assert "test accuracy 0.500; no baseline recorded" in text


def test_models_show_is_a_screenful_for_people() -> None:
    info = ModelInfo(ref=REF, feature_names=tuple(f"rsi_14:member_{i}" for i in range(40)),
                     training_metrics={"loss": 1.01, "val_loss": 1.05})  # fmt: skip
    lines = report.model_summary(info)
    assert lines[0] == REF.name and len(lines) < 30
    assert all(len(line) <= 100 for line in lines if "sha256" not in line), lines
    text = "\n".join(lines)
    assert "data        directory fx · 2017-04-19 08:00 → 2018-02-07 15:00" in text
    assert "verdict: does not beat always predicting HOLD" in text
    assert "features    40: rsi_14:member_0" in text
    assert lines[-1] == f"(everything: trainwire models show {REF.name} --json)"


def test_models_list_has_quality_and_data_columns_and_cuts_nothing() -> None:
    first, last = ts("2004-08-19T00:00"), ts("2013-03-01T00:00")
    goog = SeriesProvenance(
        symbol="GOOG", timeframe="1d", file="GOOG.csv", start=first, end=last, rows=2148
    )
    data = DataProvenance(source="dataset", location="market@904bd93e", series=(goog,))
    daily = ModelRef(name="trend/GOOG_1d_v1", strategy="trend", version=1, sha256="c" * 64,
                     size_bytes=1, data=data,
                     trading={"Return [%]": 4.21, "Buy & Hold Return [%]": 27.5})  # fmt: skip
    lines = report.table(report.MODEL_HEADERS, [report.model_row(m) for m in (REF, daily)])
    headers = ["NAME", "ACC", "F1", "BASELINE", "LIFT", "RETURN/HOLD", "DATA", "CREATED"]
    assert lines[0].split() == headers
    cells = [c.strip() for c in lines[1].split("  ") if c.strip()]
    assert cells[1:7] == [
        "0.412",
        "0.301",
        "HOLD 0.553",
        "-14.1",
        "-",  # no backtest: a dash, not an invented number
        "directory fx 2017-04-19→2018-02-07, 6,251 rows",
    ]
    assert "+4.2%/+27.5%" in lines[2]  # the model's test-split return beside holding
    assert lines[1].endswith("2026-01-05")
    # Dates only for daily bars; no assessment shows as dashes, never as invented numbers.
    cells = [c for c in lines[2].split("  ") if c.strip()]
    assert [c.strip() for c in cells[1:5]] == ["-", "-", "-", "-"]
    assert "dataset market@904bd93e 2004-08-19→2013-03-01, 2,148 rows" in lines[2]


def test_nodes_show_the_whole_device_name_and_where_the_node_came_from() -> None:
    name = "NVIDIA H200 NVL (141 GB HBM3e, compute 9.0)"
    nodes = [
        NodeStatus(address="gpu-host.example.internal:50052", source="registered",
                   health=NodeHealth.SERVING, slots_used=1, last_check=0.0, latency_ms=1.25,
                   info=NodeInfo(node_id="gpu", address="gpu-host.example.internal:50052",
                                 device=NodeDevice(kind=DeviceKind.CUDA, name=name), slots=2)),
        NodeStatus(address="127.0.0.1:50052", source="static", health=NodeHealth.UNREACHABLE,
                   info=None, slots_used=0, last_check=0.0, latency_ms=0.0, detail="refused"),
    ]  # fmt: skip
    lines = report.table(report.NODE_HEADERS, [report.node_row(n) for n in nodes])
    assert f"registered  serving      cuda {name}  1/2" in lines[1]
    assert lines[2].split()[:4] == ["127.0.0.1:50052", "static", "unreachable", "?"]
    assert lines[2].endswith("refused")
