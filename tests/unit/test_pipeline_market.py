"""The synthetic market and the data-directory loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from shared.pipeline.market import (
    DataError,
    DataIssue,
    load_bars,
    load_series,
    resample_bars,
    synthetic_bars,
    timeframe_delta,
)
from shared.spec import DataSource, DataSpec


def test_synthetic_is_deterministic_and_well_formed() -> None:
    a = synthetic_bars("SYNTH", "1h", 500, 7)
    b = synthetic_bars("SYNTH", "1h", 500, 7)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["open", "high", "low", "close", "volume"]
    assert all(str(t) == "float64" for t in a.dtypes)
    assert isinstance(a.index, pd.DatetimeIndex) and str(a.index.tz) == "UTC"
    assert a.index.is_monotonic_increasing and not a.index.has_duplicates
    assert (a.index[1:] - a.index[:-1] == pd.Timedelta(hours=1)).all()
    assert (a["high"] >= a[["open", "close"]].max(axis=1)).all()
    assert (a["low"] <= a[["open", "close"]].min(axis=1)).all()
    assert (a[["open", "high", "low", "close", "volume"]] > 0).all().all()


def test_synthetic_differs_by_symbol_and_seed() -> None:
    base = synthetic_bars("SYNTH", "1h", 300, 7)["close"].to_numpy()
    assert not np.allclose(base, synthetic_bars("AAPL", "1h", 300, 7)["close"].to_numpy())
    assert not np.allclose(base, synthetic_bars("SYNTH", "1h", 300, 8)["close"].to_numpy())


def test_more_bars_extend_the_same_market() -> None:
    short = synthetic_bars("SYNTH", "1h", 500, 7)
    long = synthetic_bars("SYNTH", "1h", 3000, 7).iloc[:500]
    pd.testing.assert_frame_equal(short, long, check_exact=True, check_freq=False)


def test_long_series_stay_finite() -> None:
    bars = synthetic_bars("X", "5m", 200_000, 1)
    assert np.isfinite(bars.to_numpy()).all()
    assert bars["close"].max() / bars["close"].min() < 100


def test_resample_keeps_only_complete_bins() -> None:
    hourly = synthetic_bars("SYNTH", "1h", 10, 1)
    four = resample_bars(hourly, "1h", "4h")
    assert len(four) == 2  # 00-04, 04-08; 08-10 is incomplete
    assert four["open"].iloc[0] == hourly["open"].iloc[0]
    assert four["close"].iloc[0] == hourly["close"].iloc[3]
    assert four["high"].iloc[1] == hourly["high"].iloc[4:8].max()
    assert four["volume"].iloc[1] == pytest.approx(hourly["volume"].iloc[4:8].sum())
    with pytest.raises(ValueError):
        resample_bars(hourly, "1h", "90m")


def test_load_synthetic_resamples_from_the_generation_timeframe() -> None:
    data = DataSpec(bars=480, seed=3)
    hourly = load_bars(data, "SYNTH", "1h", base_timeframe="1h")
    daily = load_bars(data, "SYNTH", "1d", base_timeframe="1h")
    assert len(hourly) == 480 and len(daily) == 20
    assert daily["close"].iloc[0] == hourly["close"].iloc[23]


def test_load_bounds_by_date() -> None:
    data = DataSpec(bars=96, start="2020-01-02", end="2020-01-02")
    bars = load_bars(data, "SYNTH", "1h")
    assert len(bars) == 24
    assert bars.index[0] == pd.Timestamp("2020-01-02T00:00Z")


def _write_csv(folder: Path, name: str, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index_label="timestamp")


def _directory(path: str = "market") -> DataSpec:
    return DataSpec(source=DataSource.DIRECTORY, path=path)


def test_load_csv_round_trip(tmp_path: Path) -> None:
    original = synthetic_bars("AAPL", "1h", 50, 1)
    _write_csv(tmp_path / "market", "AAPL_1h.csv", original)
    loaded = load_bars(_directory(), "AAPL", "1h", tmp_path)
    assert loaded.index.equals(original.index)
    np.testing.assert_allclose(loaded.to_numpy(), original.to_numpy(), rtol=1e-12)


def test_missing_csv_names_symbol_and_timeframe(tmp_path: Path) -> None:
    (tmp_path / "market").mkdir()
    with pytest.raises(DataError) as info:
        load_bars(_directory(), "MSFT", "4h", tmp_path)
    assert info.value.symbol == "MSFT" and info.value.timeframe == "4h"
    assert "MSFT" in str(info.value) and "4h" in str(info.value)
    assert "MSFT_4h.csv" in str(info.value)


def test_no_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data directory"):
        load_bars(_directory(), "MSFT", "1h", None)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda f: f.assign(low=-1.0), "non-positive price"),
        (lambda f: f.assign(volume=-5.0), "negative volume"),
        (lambda f: f.drop(columns=["volume"]), "missing column"),
    ],
)
def test_what_cannot_be_trained_is_a_data_error(
    tmp_path: Path, mutate: object, problem: str
) -> None:
    frame = synthetic_bars("BAD", "1h", 10, 1)
    assert callable(mutate)
    _write_csv(tmp_path / "market", "BAD_1h.csv", mutate(frame))
    with pytest.raises(DataError, match=problem) as info:
        load_bars(_directory(), "BAD", "1h", tmp_path)
    assert info.value.symbol == "BAD" and info.value.timeframe == "1h"
    assert "BAD_1h.csv" in str(info.value)


def _issues(tmp_path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, DataIssue]]:
    _write_csv(tmp_path / "market", "MESSY_1h.csv", frame)
    series = load_series(_directory(), "MESSY", "1h", tmp_path)
    return series.frame, {issue.kind: issue for issue in series.issues}


def test_rows_with_missing_values_are_dropped_and_reported(tmp_path: Path) -> None:
    frame = synthetic_bars("MESSY", "1h", 10, 1)
    frame.loc[frame.index[[2, 5]], "close"] = np.nan
    loaded, issues = _issues(tmp_path, frame)
    assert len(loaded) == 8 and frame.index[2] not in loaded.index
    assert issues["nan_rows"].count == 2
    assert (
        "dropped" in issues["nan_rows"].message and "2020-01-01 02:00" in issues["nan_rows"].message
    )


def test_unsorted_rows_are_sorted_and_reported(tmp_path: Path) -> None:
    frame = synthetic_bars("MESSY", "1h", 10, 1)
    loaded, issues = _issues(tmp_path, frame.iloc[[0, 2, 1, 3, 5, 4, 6, 7, 8, 9]])
    assert loaded.index.equals(frame.index)
    np.testing.assert_allclose(loaded.to_numpy(), frame.to_numpy(), rtol=1e-12)
    assert issues["unsorted_rows"].count == 2
    assert "sorted" in issues["unsorted_rows"].message


def test_duplicate_timestamps_keep_the_last_row_and_are_reported(tmp_path: Path) -> None:
    frame = synthetic_bars("MESSY", "1h", 10, 1)
    correction = frame.iloc[[4]].assign(close=frame["close"].iloc[4] * 1.01)
    loaded, issues = _issues(tmp_path, pd.concat([frame, correction]))
    assert len(loaded) == 10 and loaded.index.is_unique
    assert loaded["close"].iloc[4] == pytest.approx(correction["close"].iloc[0])
    assert issues["duplicate_rows"].count == 1
    assert "kept the last row" in issues["duplicate_rows"].message


def test_gaps_are_reported_but_weekends_are_not_gaps(tmp_path: Path) -> None:
    hours = pd.date_range("2024-01-01", "2024-01-21 23:00", freq="1h", tz="UTC")  # Mon-Sun
    weekdays = hours[hours.day_of_week < 5]
    frame = synthetic_bars("MESSY", "1h", len(weekdays), 1).set_axis(weekdays.rename("timestamp"))
    _, issues = _issues(tmp_path, frame)
    assert "gaps" not in issues  # two closed weekends are no gaps
    holed = frame.drop(frame.index[30:40])  # ten hours missing on a Tuesday
    _, issues = _issues(tmp_path, holed)
    assert issues["gaps"].count == 1
    assert "2024-01-02 05:00 to 2024-01-02 16:00" in issues["gaps"].message


def test_too_few_bars(tmp_path: Path) -> None:
    _write_csv(tmp_path / "market", "FEW_1h.csv", synthetic_bars("FEW", "1h", 3, 1))
    with pytest.raises(DataError, match="too few bars"):
        load_bars(_directory(), "FEW", "1h", tmp_path, min_bars=10)


def test_parquet_without_an_engine_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "market"
    folder.mkdir()
    (folder / "PQ_1h.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError) as info:
        load_bars(_directory(), "PQ", "1h", tmp_path)
    assert info.value.symbol == "PQ"


def test_timeframe_delta() -> None:
    assert timeframe_delta("5m") == pd.Timedelta(minutes=5)
    assert timeframe_delta("4h") == pd.Timedelta(hours=4)
    assert timeframe_delta("1w") == pd.Timedelta(days=7)
    with pytest.raises(ValueError):
        timeframe_delta("1y")


def test_a_directory_source_honours_start_and_end(tmp_path: Path) -> None:
    _write_csv(tmp_path / "market", "AAPL_1h.csv", synthetic_bars("AAPL", "1h", 96, 1))
    data = DataSpec(
        source=DataSource.DIRECTORY, path="market", start="2020-01-02T06:00:00Z", end="2020-01-02"
    )
    bars = load_bars(data, "AAPL", "1h", tmp_path)
    assert bars.index[0] == pd.Timestamp("2020-01-02T06:00Z")
    assert bars.index[-1] == pd.Timestamp("2020-01-02T23:00Z")  # a date-only end: the whole day
    assert len(bars) == 18


def test_a_window_with_no_bars_is_a_data_error(tmp_path: Path) -> None:
    _write_csv(tmp_path / "market", "AAPL_1h.csv", synthetic_bars("AAPL", "1h", 96, 1))
    data = DataSpec(source=DataSource.DIRECTORY, path="market", start="2021-01-01")
    with pytest.raises(DataError, match="too few bars: 0"):
        load_bars(data, "AAPL", "1h", tmp_path)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_file_with_more_rows_than_the_limit_is_refused(tmp_path: Path, suffix: str) -> None:
    frame = synthetic_bars("BIG", "1h", 50, 1)
    folder = tmp_path / "market"
    if suffix == "csv":
        _write_csv(folder, "BIG_1h.csv", frame)
    else:
        folder.mkdir()
        frame.to_parquet(folder / "BIG_1h.parquet")
    assert len(load_bars(_directory(), "BIG", "1h", tmp_path, max_bars=50)) == 50
    with pytest.raises(DataError, match="more than 49 rows") as info:
        load_bars(_directory(), "BIG", "1h", tmp_path, max_bars=49)
    assert "max_bars" in str(info.value)
    assert (info.value.symbol, info.value.timeframe) == ("BIG", "1h")
