"""Data a user has: which source a request trains on, files in the shapes people keep them,
higher timeframes from one file, the dataset source, and the load step's events and
provenance."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from shared.cancellation import CancellationToken
from shared.pipeline import validate_request
from shared.pipeline.job import JobContext, TrainingJob
from shared.pipeline.market import (
    DataError,
    load_series,
    read_market_file,
    resample_file_bars,
    spacing_timeframe,
    synthetic_bars,
)
from shared.pipeline.preprocess import load_data, prepare_dataset
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ProgressUpdate, UpdateKind
from shared.rpc import serde
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import (
    DataSource,
    DataSpec,
    SpecError,
    TrainingRequest,
    default_strategy,
    is_synthetic_symbol,
)
from tests.support.market_files import market_dir, real_file

# --- which source -------------------------------------------------------------------------------


def _from_proto(**fields: object) -> TrainingRequest:
    return serde.request_from_proto(spb.TrainRequest(timeframes=["1h"], **fields))  # type: ignore[arg-type]


def _refused(request: TrainingRequest) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate_request(request)
    return info.value


def test_the_synthetic_family() -> None:
    assert all(is_synthetic_symbol(s) for s in ("SYNTH", "SYNTH2", "synth_fx", "SYNTH.A"))
    assert not any(is_synthetic_symbol(s) for s in ("EURUSD", "GOOG", "XSYNTH", "SYN"))


def test_a_real_symbol_without_a_source_is_refused_with_what_to_add() -> None:
    request = _from_proto(symbols=["SYNTH", "EURUSD"])
    assert request.data.source is DataSource.UNSPECIFIED
    error = _refused(request)
    assert error.field == "data.source"
    assert "EURUSD is not a synthetic symbol" in error.message
    for hint in ("data.path", "--data DIR", "data.dataset", "--dataset NAME", "--synthetic"):
        assert hint in error.message


def test_synthetic_symbols_alone_default_to_the_synthetic_market() -> None:
    request = _from_proto(symbols=["SYNTH", "SYNTH2"])
    assert request.data.source is DataSource.SYNTHETIC
    validate_request(request)
    # What the trainer receives names the source explicitly.
    assert serde.request_to_proto(request).data.source == spb.DATA_SOURCE_KIND_SYNTHETIC


def test_an_explicit_synthetic_source_serves_any_symbol() -> None:
    request = _from_proto(
        symbols=["EURUSD"], data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_SYNTHETIC)
    )
    assert request.data.source is DataSource.SYNTHETIC
    validate_request(request)


def test_a_path_or_a_dataset_alone_names_the_source() -> None:
    assert _from_proto(symbols=["EURUSD"], data=spb.DataSpec(path="market")).data.source is (
        DataSource.DIRECTORY
    )
    assert _from_proto(symbols=["EURUSD"], data=spb.DataSpec(dataset="fx")).data.source is (
        DataSource.DATASET
    )
    both = _refused(_from_proto(symbols=["EURUSD"], data=spb.DataSpec(path="m", dataset="fx")))
    assert both.field == "data.dataset" and "not both" in both.message


def test_a_strategy_files_symbols_follow_the_same_rule() -> None:
    shipped = real_strategy("volatility_breakout.yaml")
    validate_request(serde.request_from_proto(spb.TrainRequest(strategy_yaml=shipped)))
    text = shipped.replace("list: [SYNTH, SYNTH2, SYNTH3]", "list: [GOOG, EURUSD]")
    assert text != shipped
    error = _refused(serde.request_from_proto(spb.TrainRequest(strategy_yaml=text)))
    assert error.field == "data.source" and "GOOG is not a synthetic symbol" in error.message


def test_bad_symbols_are_reported_before_the_source() -> None:
    assert _refused(_from_proto(symbols=["../etc"])).field == "symbols[0]"


def real_strategy(name: str) -> str:
    return (Path(__file__).resolve().parents[2] / "strategies" / name).read_text()


def _request(data: DataSpec, symbols: tuple[str, ...] = ("EURUSD",)) -> TrainingRequest:
    return TrainingRequest(
        symbols=symbols, timeframes=("1h",), strategy=default_strategy(), data=data
    )


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (DataSpec(source=DataSource.DATASET), "data.dataset", "--dataset NAME"),
        (DataSpec(source=DataSource.DATASET, dataset="../x"), "data.dataset", "dataset name"),
        (DataSpec(source=DataSource.DATASET, dataset="x" * 65), "data.dataset", "1-64"),
        (DataSpec(source=DataSource.DATASET, dataset="fx", path="m"), "data.path", "directory"),
        (
            DataSpec(source=DataSource.DATASET, dataset="fx", dataset_sha256="abc"),
            "data.dataset_sha256",
            "64 lowercase hex",
        ),
        (DataSpec(source=DataSource.DIRECTORY, path="m", dataset="fx"), "data.dataset", "only"),
        (DataSpec(dataset_sha256="a" * 64), "data.dataset_sha256", "only a dataset"),
        (DataSpec(source=DataSource.DIRECTORY), "data.path", "--data DIR"),
        (
            DataSpec(source=DataSource.DIRECTORY, path="m", timezone="Mars/Base"),
            "data.timezone",
            "IANA",
        ),
        (
            DataSpec(source=DataSource.DIRECTORY, path="m", timezone="../../etc/passwd"),
            "data.timezone",
            "IANA",
        ),
        (
            DataSpec(source=DataSource.DIRECTORY, path="m", timezone="UTC\n"),
            "data.timezone",
            "IANA",
        ),
        (DataSpec(timezone="Europe/London"), "data.timezone", "synthetic market"),
    ],
)
def test_data_spec_rules(data: DataSpec, field: str, words: str) -> None:
    error = _refused(_request(data))
    assert error.field == field and words in error.message


def test_valid_dataset_and_timezone_requests_pass() -> None:
    validate_request(_request(DataSpec(source=DataSource.DATASET, dataset="eurusd.h1")))
    validate_request(
        _request(DataSpec(source=DataSource.DATASET, dataset="fx", dataset_sha256="0" * 64))
    )
    for zone in ("UTC", "America/New_York", "America/Argentina/Buenos_Aires", "Etc/GMT+5"):
        validate_request(_request(DataSpec(source=DataSource.DIRECTORY, path="m", timezone=zone)))


# --- files as people have them ------------------------------------------------------------------


def _bars(rows: int = 48, timeframe: str = "1h") -> pd.DataFrame:
    return synthetic_bars("X", timeframe, rows, 3)


def _read(path: Path, timezone: str = "", timeframe: str | None = "1h") -> pd.DataFrame:
    return read_market_file(path, timeframe=timeframe, timezone=timezone).frame


def _same(loaded: pd.DataFrame, original: pd.DataFrame) -> None:
    assert loaded.index.equals(original.index)
    assert list(loaded.columns) == ["open", "high", "low", "close", "volume"]
    np.testing.assert_allclose(loaded.to_numpy(), original.to_numpy(), rtol=1e-9)


def _capitalised(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=str.capitalize)


def test_the_real_files_load_as_they_are() -> None:
    goog = read_market_file(real_file("GOOG.csv"))
    assert goog.timeframe == "1d" and len(goog.frame) == 2148 and goog.naive
    assert goog.frame.index[0] == pd.Timestamp("2004-08-19", tz="UTC")
    assert goog.issues == ()
    eurusd = read_market_file(real_file("EURUSD.csv"))
    assert eurusd.timeframe == "1h" and len(eurusd.frame) == 5000
    assert eurusd.frame.index[-1] == pd.Timestamp("2018-02-07 15:00", tz="UTC")
    assert [i.kind for i in eurusd.issues] == ["gaps"]  # Christmas and New Year, not weekends


def test_an_unnamed_first_column_as_to_csv_writes_it(tmp_path: Path) -> None:
    frame = _bars()
    _capitalised(frame).rename_axis(None).to_csv(tmp_path / "X.csv")
    assert (tmp_path / "X.csv").read_text().startswith(",Open,High,Low,Close,Volume")
    _same(_read(tmp_path / "X.csv"), frame)


@pytest.mark.parametrize("name", ["Date", "Datetime", "timestamp", "TIME", " <DATE> ", "open_time"])
def test_a_named_time_column_in_any_case(tmp_path: Path, name: str) -> None:
    frame = _bars()
    out = frame.rename(columns=str.upper).rename_axis(name).reset_index()
    out.to_csv(tmp_path / "X.csv", index=False)
    _same(_read(tmp_path / "X.csv"), frame)


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1000)])
def test_epoch_seconds_and_milliseconds(tmp_path: Path, unit: str, scale: int) -> None:
    frame = _bars()
    seconds = frame.index.as_unit("s").asi8
    out = frame.reset_index(drop=True).assign(timestamp=seconds * scale)
    out.to_csv(tmp_path / "X.csv", index=False)
    loaded = read_market_file(tmp_path / "X.csv", timezone="America/New_York")
    _same(loaded.frame, frame)
    assert not loaded.naive  # epoch numbers are absolute: the timezone does not move them


def test_yyyymmdd_integers_and_separate_date_and_time_columns(tmp_path: Path) -> None:
    daily = _bars(30, "1d")
    out = daily.reset_index(drop=True).assign(date=daily.index.strftime("%Y%m%d").astype(int))
    out.to_csv(tmp_path / "D.csv", index=False)
    _same(_read(tmp_path / "D.csv", timeframe="1d"), daily)
    hourly = _bars()
    split = hourly.reset_index(drop=True).assign(
        Date=hourly.index.strftime("%Y.%m.%d"), Time=hourly.index.strftime("%H:%M")
    )
    split[["Date", "Time", *hourly.columns]].to_csv(tmp_path / "H.csv", index=False)
    _same(_read(tmp_path / "H.csv"), hourly)


def test_a_semicolon_separated_file(tmp_path: Path) -> None:
    frame = _bars()
    frame.to_csv(tmp_path / "X.csv", sep=";")
    _same(_read(tmp_path / "X.csv"), frame)


def test_parquet_with_the_times_as_index_or_as_a_column(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    frame = _bars()
    _capitalised(frame).to_parquet(tmp_path / "I.parquet")
    _same(_read(tmp_path / "I.parquet"), frame)
    frame.reset_index().rename(columns={"timestamp": "Datetime"}).to_parquet(
        tmp_path / "C.parquet", index=False
    )
    _same(_read(tmp_path / "C.parquet"), frame)


def test_naive_times_are_taken_in_the_declared_timezone(tmp_path: Path) -> None:
    frame = _bars(24 * 3)
    naive = frame.set_axis(frame.index.tz_localize(None).rename("Date"))
    naive.to_csv(tmp_path / "X.csv")
    as_utc = read_market_file(tmp_path / "X.csv", timeframe="1h")
    assert as_utc.naive and as_utc.frame.index.equals(frame.index)
    new_york = read_market_file(tmp_path / "X.csv", timeframe="1h", timezone="America/New_York")
    # January: New York is UTC-5, so 00:00 there is 05:00 UTC.
    assert new_york.frame.index[0] == pd.Timestamp("2020-01-01 05:00", tz="UTC")


def test_times_with_an_offset_ignore_the_timezone(tmp_path: Path) -> None:
    frame = _bars()
    shifted = frame.set_axis(frame.index.tz_convert("Asia/Tokyo").rename("time"))
    shifted.to_csv(tmp_path / "X.csv")
    loaded = read_market_file(tmp_path / "X.csv", timeframe="1h", timezone="America/New_York")
    assert not loaded.naive
    _same(loaded.frame, frame)


def test_mostly_unreadable_timestamps_are_a_data_error(tmp_path: Path) -> None:
    frame = _bars(10).reset_index(drop=True).assign(date="soon")
    frame.to_csv(tmp_path / "X.csv", index=False)
    with pytest.raises(DataError, match="cannot be read as dates"):
        read_market_file(tmp_path / "X.csv", timeframe="1h")


def test_a_few_unreadable_timestamps_are_dropped_and_reported(tmp_path: Path) -> None:
    frame = _bars(10)
    text = frame.set_axis(frame.index.strftime("%Y-%m-%d %H:%M:%S")).rename_axis("date")
    text = text.rename(index={text.index[3]: "not a time"})
    text.to_csv(tmp_path / "X.csv")
    read = read_market_file(tmp_path / "X.csv", timeframe="1h")
    assert len(read.frame) == 9
    assert {i.kind: i.count for i in read.issues}["unreadable_timestamps"] == 1


def test_spacing_tells_the_timeframe() -> None:
    assert spacing_timeframe(_bars(10, "1h").index) == "1h"
    assert spacing_timeframe(_bars(10, "4h").index) == "4h"
    assert spacing_timeframe(read_market_file(real_file("GOOG.csv")).frame.index) == "1d"
    assert spacing_timeframe(_bars(10, "1w").index) == "1w"
    odd = pd.DatetimeIndex(["2020-01-01 00:00:00", "2020-01-01 00:00:30"], tz="UTC")
    assert spacing_timeframe(odd) is None


# --- higher timeframes from one file ------------------------------------------------------------


def _directory(path: str = "market", timezone: str = "") -> DataSpec:
    return DataSpec(source=DataSource.DIRECTORY, path=path, timezone=timezone)


@pytest.mark.parametrize("name", ["EURUSD.csv", "EURUSD_1h.csv"])
def test_four_hour_bars_are_resampled_from_the_hourly_file(tmp_path: Path, name: str) -> None:
    market_dir(tmp_path, {name: "EURUSD.csv"})
    hourly = load_series(_directory(), "EURUSD", "1h", tmp_path)
    four = load_series(_directory(), "EURUSD", "4h", tmp_path)
    assert (hourly.file, hourly.resampled_from) == (name, "")
    assert (four.file, four.resampled_from) == (name, "1h")
    h, f = hourly.frame, four.frame
    # The file starts at 09:00, inside the 08:00 bin: that incomplete first bin is dropped.
    assert h.index[0] == pd.Timestamp("2017-04-19 09:00", tz="UTC")
    assert f.index[0] == pd.Timestamp("2017-04-19 12:00", tz="UTC")
    window = h.loc[f.index[0] : f.index[0] + pd.Timedelta(hours=3)]
    assert len(window) == 4
    assert f["open"].iloc[0] == window["open"].iloc[0]
    assert f["high"].iloc[0] == window["high"].max()
    assert f["low"].iloc[0] == window["low"].min()
    assert f["close"].iloc[0] == window["close"].iloc[-1]
    assert f["volume"].iloc[0] == pytest.approx(window["volume"].sum())
    # The file ends with the 15:00 bar, inside the 12:00-16:00 bin: complete, kept.
    assert f.index[-1] == pd.Timestamp("2018-02-07 12:00", tz="UTC")


def test_weekly_bars_from_daily_keep_short_weeks_and_drop_the_incomplete_ends() -> None:
    daily = read_market_file(real_file("GOOG.csv")).frame
    weekly = resample_file_bars(daily, "1d", "1w")
    assert (weekly.index.day_of_week == 0).all()  # labelled by their open: Mondays
    # GOOG starts on Thursday 2004-08-19 (an incomplete week) and ends on Friday 2013-03-01
    # (its week closes on Monday 2013-03-04, after the data ends).
    assert weekly.index[0] == pd.Timestamp("2004-08-23", tz="UTC")
    assert weekly.index[-1] == pd.Timestamp("2013-02-18", tz="UTC")
    # The week of 2004-09-06 had a holiday (Labor Day): four bars, still a week.
    week = daily.loc["2004-09-06":"2004-09-12"]
    assert len(week) == 4
    row = weekly.loc[pd.Timestamp("2004-09-06", tz="UTC")]
    assert row["open"] == week["open"].iloc[0] and row["close"] == week["close"].iloc[-1]


def test_the_finest_file_is_the_one_resampled(tmp_path: Path) -> None:
    folder = market_dir(tmp_path, {"EURUSD_1h.csv": "EURUSD.csv"})
    coarse = read_market_file(folder / "EURUSD_1h.csv").frame
    resample_file_bars(coarse, "1h", "2h").to_csv(folder / "EURUSD_2h.csv")
    daily = load_series(_directory(), "EURUSD", "1d", tmp_path)
    assert (daily.file, daily.resampled_from) == ("EURUSD_1h.csv", "1h")
    two = load_series(_directory(), "EURUSD", "2h", tmp_path)
    assert (two.file, two.resampled_from) == ("EURUSD_2h.csv", "")


def test_no_file_to_resample_from_names_what_there_is(tmp_path: Path) -> None:
    market_dir(tmp_path, {"GOOG.csv": "GOOG.csv"})
    with pytest.raises(DataError) as info:
        load_series(_directory(), "GOOG", "4h", tmp_path)
    assert (info.value.symbol, info.value.timeframe) == ("GOOG", "4h")
    assert "GOOG_4h.csv" in str(info.value) and "GOOG.csv (1d)" in str(info.value)


# --- the dataset source -------------------------------------------------------------------------


def test_a_dataset_is_read_from_its_local_copy_like_a_directory(tmp_path: Path) -> None:
    copy = market_dir(tmp_path, {"EURUSD.csv": "EURUSD.csv"}, folder="copy")
    data = DataSpec(source=DataSource.DATASET, dataset="fx", dataset_sha256="ab" * 32)
    series = load_series(data, "EURUSD", "4h", dataset_dir=copy)
    assert (series.file, series.resampled_from, len(series.frame)) == ("EURUSD.csv", "1h", 1291)
    with pytest.raises(DataError, match="no copy of dataset 'fx'"):
        load_series(data, "EURUSD", "1h")


# --- the load step: events and provenance -------------------------------------------------------


def _job(request: TrainingRequest) -> tuple[TrainingJob, list[ProgressUpdate]]:
    updates: list[ProgressUpdate] = []
    return JobContext(request, ProgressTracker(updates.append), CancellationToken()), updates


def _timeframes(request: TrainingRequest, *tfs: str) -> TrainingRequest:
    return dataclasses.replace(request, timeframes=tfs)


def test_the_load_step_names_the_source_and_records_provenance(tmp_path: Path) -> None:
    market_dir(tmp_path, {"EURUSD.csv": "EURUSD.csv"})
    request = _timeframes(_request(_directory(timezone="Europe/London")), "1h", "4h")
    job, updates = _job(request)
    bars, provenance = load_data(job, tmp_path)
    assert set(bars) == {("EURUSD", "1h"), ("EURUSD", "4h")}
    assert (provenance.source, provenance.location) == ("directory", "market")
    assert provenance.timezone == "Europe/London"
    hourly, four = provenance.series
    assert (hourly.file, hourly.rows, hourly.resampled_from) == ("EURUSD.csv", 5000, "")
    # Naive times read in London: April is BST (UTC+1), so 09:00 there is 08:00 UTC.
    assert hourly.start == pd.Timestamp("2017-04-19 08:00", tz="UTC").timestamp()
    assert hourly.end == pd.Timestamp("2018-02-07 15:00", tz="UTC").timestamp()  # GMT
    assert (four.file, four.resampled_from) == ("EURUSD.csv", "1h")
    details = [u.message for u in updates if u.kind is UpdateKind.DETAIL]
    assert details[0] == (
        "Loading EURUSD 1h from EURUSD.csv (5,000 bars, 2017-04-19 08:00 … 2018-02-07 15:00)"
    )
    closing = [u.message for u in updates if u.kind is UpdateKind.STEP][-1]
    assert closing.startswith("Loaded ") and "directory market" in closing
    assert "EURUSD 4h from EURUSD.csv, resampled from 1h" in closing
    assert "timestamps without a zone read as Europe/London" in closing


def test_what_cleaning_found_is_a_warning_event_with_counts(tmp_path: Path) -> None:
    folder = market_dir(tmp_path, {})
    frame = read_market_file(real_file("EURUSD.csv")).frame
    messy = pd.concat([frame.iloc[:100], frame.iloc[[50, 60]], frame.iloc[100:]])
    messy.iloc[200, 3] = np.nan
    messy.to_csv(folder / "EURUSD.csv")
    request = _timeframes(_request(_directory()), "1h", "4h")
    job, updates = _job(request)
    load_data(job, tmp_path)
    warnings = [u for u in updates if u.kind is UpdateKind.WARNING]
    counts = {k: v for u in warnings for k, v in u.metrics.items()}
    assert counts == {"nan_rows": 1, "unsorted_rows": 1, "duplicate_rows": 2, "gaps": 2}
    assert all("EURUSD.csv" in u.message for u in warnings)
    assert len(warnings) == 4  # once per file, not again for the 4h series made from it


def test_prepare_dataset_carries_the_provenance_of_synthetic_data() -> None:
    request = TrainingRequest(
        symbols=("SYNTH",),
        timeframes=("1h", "4h"),
        strategy=default_strategy(),
        data=DataSpec(bars=800, seed=9),
    )
    job, updates = _job(request)
    dataset = prepare_dataset(job, None)
    assert dataset.provenance is not None
    assert (dataset.provenance.source, dataset.provenance.location) == ("synthetic", "seed 9")
    assert [(s.timeframe, s.rows, s.resampled_from) for s in dataset.provenance.series] == [
        ("1h", 800, ""),
        ("4h", 200, "1h"),
    ]
    assert not [u for u in updates if u.kind is UpdateKind.WARNING]
    closing = next(u.message for u in updates if u.kind is UpdateKind.STEP and u.step_index == 2)
    assert closing  # the load step finished and the next began
    loaded = [u.message for u in updates if u.kind is UpdateKind.STEP and u.step_index == 1]
    assert "the synthetic market (seed 9)" in loaded[-1]
    assert "SYNTH 4h generated, resampled from 1h (200 bars" in loaded[-1]


def test_a_folder_the_trainer_lacks_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="market is not a folder on this trainer"):
        load_series(_directory(), "EURUSD", "1h", tmp_path)
