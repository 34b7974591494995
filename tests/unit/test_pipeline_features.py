"""Timeframe alignment without look-ahead, combining symbols, purged splits, the scaler, and a
default strategy whose features vary on any instrument."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from shared.cancellation import CancellationToken
from shared.pipeline.features import (
    Dataset,
    Scaler,
    SymbolFrame,
    align_to_base,
    combine_symbols,
    feature_column,
    indicator_input,
    split_dataset,
    split_rows,
    symbol_features,
)
from shared.pipeline.job import JobContext
from shared.pipeline.labels import NO_LABEL
from shared.pipeline.market import DataError
from shared.pipeline.preprocess import (
    build_features,
    compute_indicators,
    compute_memberships,
    load_data,
)
from shared.progress.tracker import ProgressTracker
from shared.spec import DataSource, DataSpec, FuzzySetSpec, TrainingRequest, default_strategy
from tests.support.market_files import market_dir


def _hourly(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")


def _four_hourly(n: int) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=n, freq="4h", tz="UTC")
    return pd.DataFrame({"v": np.arange(n, dtype=np.float64)}, index=index)


def test_higher_timeframe_bar_is_usable_only_after_it_closes() -> None:
    base = _hourly(12)  # 00:00 .. 11:00, each known at its close (+1h)
    aligned = align_to_base(_four_hourly(3), "4h", base, "1h")["v"].tolist()
    # the 00:00 4h bar closes at 04:00 = close of the 03:00 hourly bar
    assert np.isnan(aligned[:3]).all()
    assert aligned[3:7] == [0.0, 0.0, 0.0, 0.0]
    assert aligned[7:11] == [1.0, 1.0, 1.0, 1.0]
    assert aligned[11] == 2.0


def test_alignment_never_sees_the_future() -> None:
    base = _hourly(48)
    higher = _four_hourly(12)
    before = align_to_base(higher, "4h", base, "1h")
    changed = higher.copy()
    changed.iloc[6:, 0] = 1e9  # rewrite every 4h bar from 24:00 on
    after = align_to_base(changed, "4h", base, "1h")
    # hourly rows up to 26:00 close by 27:00 < 28:00, when the 24:00 4h bar closes
    known = base + pd.Timedelta(hours=1) < pd.Timestamp("2024-01-02T04:00Z")
    pd.testing.assert_frame_equal(before[known], after[known])
    assert not before[~known].equals(after[~known])


def test_base_timeframe_is_identity() -> None:
    frame = pd.DataFrame({"v": np.arange(5.0)}, index=_hourly(5))
    assert align_to_base(frame, "1h", frame.index, "1h") is frame


def test_symbol_features_and_names() -> None:
    fs = FuzzySetSpec(input="rsi_14", name="oversold", shape="triangular", params=(0, 20, 35))
    assert feature_column(fs, "1h", False) == "rsi_14:oversold"
    assert feature_column(fs, "4h", True) == "rsi_14:oversold@4h"
    base = pd.DataFrame({"a@1h": np.arange(8.0)}, index=_hourly(8))
    higher = _four_hourly(2).rename(columns={"v": "a@4h"})
    out = symbol_features({"1h": base, "4h": higher}, ["1h", "4h"])
    assert list(out.columns) == ["a@1h", "a@4h"]
    assert out.index.equals(base.index)


def test_indicator_input_resolves_default_and_named_outputs() -> None:
    frames = {"macd": pd.DataFrame({"line": [1.0], "signal": [2.0], "histogram": [3.0]})}
    assert indicator_input("macd", frames).tolist() == [1.0]
    assert indicator_input("macd.histogram", frames).tolist() == [3.0]


def _symbol(name: str, n: int, warmup: int, lookahead: int) -> SymbolFrame:
    values = np.arange(n, dtype=np.float64)
    values[:warmup] = np.nan
    labels = np.arange(n, dtype=np.int64) % 3
    labels[n - lookahead :] = NO_LABEL
    frame = pd.DataFrame({"f": values, "g": values * 2}, index=_hourly(n))
    return SymbolFrame(name, frame, labels)


def test_combine_drops_warmup_and_unlabelled_rows_in_symbol_order() -> None:
    ds = combine_symbols([_symbol("A", 20, 3, 2), _symbol("B", 10, 1, 1)])
    assert ds.samples == (20 - 3 - 2) + (10 - 1 - 1)
    assert ds.feature_names == ("f", "g")
    assert [(s.symbol, s.start, s.stop) for s in ds.segments] == [("A", 0, 15), ("B", 15, 23)]
    assert ds.features[0, 0] == 3.0 and ds.features[15, 0] == 1.0
    assert ds.segments[0].first == _hourly(20)[3]


def test_combine_with_nothing_usable_names_the_symbol() -> None:
    with pytest.raises(DataError, match="EMPTY"):
        combine_symbols([_symbol("EMPTY", 5, 5, 0)])


def _dataset(n: int) -> Dataset:
    return combine_symbols([_symbol("A", n, 0, 0)])


def test_splits_are_chronological_and_purged() -> None:
    train, val, test = split_rows(_dataset(100), 0.2, 0.1, purge=5)
    assert test.tolist() == list(range(90, 100))
    assert val.tolist() == list(range(65, 85))
    assert train.tolist() == list(range(0, 60))  # 60..64 and 85..89 purged


def test_splits_per_symbol() -> None:
    ds = combine_symbols([_symbol("A", 50, 0, 0), _symbol("B", 50, 0, 0)])
    train, val, test = split_rows(ds, 0.2, 0.2, purge=0)
    assert test.tolist() == list(range(40, 50)) + list(range(90, 100))
    assert len(train) == 60 and len(val) == 20


def test_too_few_rows_to_split() -> None:
    with pytest.raises(DataError, match="too few samples"):
        split_rows(_dataset(10), 0.2, 0.2, purge=5)


def test_scaler_is_fitted_on_train_only() -> None:
    splits = split_dataset(_dataset(100), 0.2, 0.1, purge=0)
    assert splits.x_train.dtype == np.float32
    np.testing.assert_allclose(splits.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(splits.x_train.std(axis=0), 1.0, atol=1e-5)
    assert splits.scaler.mean[0] == pytest.approx(np.arange(70).mean())
    assert (splits.x_test > 1.5).all()  # later rows are beyond the training range


def test_constant_feature_gets_unit_std() -> None:
    scaler = Scaler.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert scaler.std.tolist() == [1.0, 1.0]
    assert scaler.transform([[2.0, 5.0]]).tolist() == [[0.0, 0.0]]


# --- the default strategy is scale-free ---------------------------------------------------------

MIN_FEATURE_STD = 0.005
"""Memberships lie in [0, 1]; a feature varying less than this is as good as constant."""


@pytest.mark.parametrize(
    ("symbol", "timeframe", "file"),
    [("GOOG", "1d", "GOOG.csv"), ("EURUSD", "1h", "EURUSD.csv"), ("SYNTH", "1h", "")],
)
def test_every_default_feature_varies_on_daily_stocks_hourly_fx_and_the_synthetic_market(
    tmp_path: Path, symbol: str, timeframe: str, file: str
) -> None:
    data = DataSpec(bars=3000, seed=7)
    if file:
        market_dir(tmp_path, {file: file})
        data = DataSpec(source=DataSource.DIRECTORY, path="market")
    request = TrainingRequest(
        symbols=(symbol,), timeframes=(timeframe,), strategy=default_strategy(), data=data
    )
    job = JobContext(request, ProgressTracker(lambda u: None), CancellationToken())
    bars, _ = load_data(job, tmp_path)
    features = build_features(job, compute_memberships(job, compute_indicators(job, bars)))
    frame = features[symbol].dropna()
    assert len(frame) > 1000
    stds = frame.std()
    flat = {name: round(float(std), 5) for name, std in stds.items() if std <= MIN_FEATURE_STD}
    assert not flat, f"constant features on {symbol} {timeframe}: {flat}"
    assert len(stds) == len(default_strategy().fuzzy_sets)
