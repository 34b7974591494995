"""Indicators against values worked by hand (conventions: see shared.pipeline.indicators)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from shared.pipeline.indicators import (
    INDICATOR_OUTPUTS,
    ParamError,
    compute_indicator,
    ema,
    resolve_params,
    rsi,
    sma,
)
from shared.pipeline.market import synthetic_bars
from shared.spec import IndicatorSpec, default_strategy


def _bars(high: list[float], low: list[float], close: list[float]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": high, "low": low, "close": close, "volume": [1.0] * len(close)},
        index=index,
    )


def _closes(values: list[float]) -> pd.DataFrame:
    return _bars(values, values, values)


def test_sma_by_hand() -> None:
    out = sma(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 3)
    assert out.isna().tolist() == [True, True, False, False, False]
    assert out.iloc[2:].tolist() == [2.0, 3.0, 4.0]


def test_ema_is_seeded_with_the_sma() -> None:
    # n=3, alpha = 2/(3+1) = 0.5; seed at row 2 = mean(2, 4, 6) = 4
    # row 3: 0.5*8 + 0.5*4 = 6; row 4: 0.5*12 + 0.5*6 = 9
    out = ema(pd.Series([2.0, 4.0, 6.0, 8.0, 12.0]), 3)
    assert out.iloc[:2].isna().all()
    assert out.iloc[2:].tolist() == [4.0, 6.0, 9.0]


def test_rsi_small_series_by_hand() -> None:
    # closes 10, 11, 10.5, 11.5, 11, 12 -> changes +1, -0.5, +1, -0.5, +1
    # first averages (changes 1..3): gain 2/3, loss 1/6 -> RS 4 -> RSI 80 (row 3)
    # row 4: gain (2/3*2+0)/3 = 4/9, loss (1/6*2+0.5)/3 = 5/18 -> RS 1.6 -> 61.538...
    # row 5: gain (4/9*2+1)/3 = 17/27, loss (5/18*2)/3 = 5/27 -> RS 3.4 -> 77.272...
    out = rsi(pd.Series([10.0, 11.0, 10.5, 11.5, 11.0, 12.0]), 3)
    assert out.iloc[:3].isna().all()
    assert out.iloc[3] == pytest.approx(80.0)
    assert out.iloc[4] == pytest.approx(100 - 100 / 2.6)
    assert out.iloc[5] == pytest.approx(100 - 100 / 4.4)


# Wilder's RSI worked example as published by StockCharts ("RSI" ChartSchool article).
_TEXTBOOK_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61,
    46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35,
    44.03, 44.18, 44.22, 44.57, 43.42, 42.66, 43.13,
]  # fmt: skip
_TEXTBOOK_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99,
    41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]  # fmt: skip


def test_rsi_wilder_textbook_example() -> None:
    out = rsi(pd.Series(_TEXTBOOK_CLOSES), 14)
    assert out.iloc[:14].isna().all()
    # Exact first value: gains over the first 14 changes sum to 3.34, losses to 1.40.
    assert out.iloc[14] == pytest.approx(100 - 100 / (1 + 3.34 / 1.40), abs=1e-9)
    # The published table rounds its intermediate averages, hence the tolerance.
    assert out.iloc[14:].to_numpy() == pytest.approx(_TEXTBOOK_RSI, abs=0.1)


def test_rsi_extremes() -> None:
    rising = rsi(pd.Series(np.arange(1.0, 30.0)), 14)
    flat = rsi(pd.Series(np.full(30, 5.0)), 14)
    assert rising.iloc[14:].eq(100.0).all()
    assert flat.iloc[14:].eq(50.0).all()


def test_atr_by_hand() -> None:
    # TR: bar0 = 10-8 = 2; bar1 = max(2, |11-9|, |9-9|) = 2; bar2 = max(1.5, |12-10|, .5) = 2
    # bar3 = max(1.5, |11.5-11|, |10-11|) = 1.5; bar4 (gap down) = max(.8, |9.8-10.5|, |9-10.5|)
    # = 1.5. ATR(3): row2 = 2; row3 = (2*2+1.5)/3 = 11/6; row4 = (11/6*2+1.5)/3 = 15.5/9
    bars = _bars(
        high=[10, 11, 12, 11.5, 9.8], low=[8, 9, 10.5, 10, 9.0], close=[9, 10, 11, 10.5, 9.5]
    )
    out = compute_indicator(IndicatorSpec(id="atr", type="atr", params={"period": 3}), bars)
    assert list(out.columns) == ["value", "relative"]
    assert out["value"].iloc[:2].isna().all()
    assert out["value"].iloc[2:].to_numpy() == pytest.approx([2.0, 11 / 6, 15.5 / 9])
    assert out["relative"].iloc[4] == pytest.approx(15.5 / 9 / 9.5)


def test_macd_by_hand_and_relations() -> None:
    # closes 1..6; EMA2 (alpha 2/3) seeded 1.5 at row 1 -> 2.5, 3.5, 4.5, 5.5
    # EMA3 (alpha 1/2) seeded 2 at row 2 -> 3, 4, 5; line = 0.5 from row 2
    # signal EMA2 of the line seeded at row 3 = 0.5; histogram 0
    spec = IndicatorSpec(id="m", type="macd", params={"fast": 2, "slow": 3, "signal": 2})
    out = compute_indicator(spec, _closes([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert list(out.columns) == ["line", "signal", "histogram"]
    assert out["line"].isna().tolist() == [True, True, False, False, False, False]
    assert out["line"].iloc[2:].to_numpy() == pytest.approx([0.5] * 4)
    assert out["signal"].isna().tolist() == [True, True, True, False, False, False]
    assert out["signal"].iloc[3:].to_numpy() == pytest.approx([0.5] * 3)
    assert out["histogram"].iloc[3:].to_numpy() == pytest.approx([0.0] * 3)

    bars = synthetic_bars("SYNTH", "1h", 300, 1)
    full = compute_indicator(IndicatorSpec(id="m", type="macd"), bars)
    fast = compute_indicator(IndicatorSpec(id="e", type="ema", params={"period": 12}), bars)
    slow = compute_indicator(IndicatorSpec(id="e", type="ema", params={"period": 26}), bars)
    line = fast["value"] - slow["value"]
    assert full["line"].iloc[25:].to_numpy() == pytest.approx(line.iloc[25:].to_numpy())
    assert full["histogram"].dropna().to_numpy() == pytest.approx(
        (full["line"] - full["signal"]).dropna().to_numpy()
    )
    assert full["signal"].isna().sum() == 25 + 8  # slow - 1 + signal - 1


def test_bollinger_by_hand() -> None:
    spec = IndicatorSpec(id="bb", type="bollinger", params={"period": 3, "std": 2})
    out = compute_indicator(spec, _closes([1.0, 2.0, 3.0]))
    band = 2 * math.sqrt(2 / 3)  # population std of 1, 2, 3
    row = out.iloc[2]
    assert row["middle"] == pytest.approx(2.0)
    assert row["upper"] == pytest.approx(2.0 + band)
    assert row["lower"] == pytest.approx(2.0 - band)
    assert row["width"] == pytest.approx(2 * band / 2.0)
    assert row["percent_b"] == pytest.approx((3.0 - (2.0 - band)) / (2 * band))


def test_sma_distance_is_scale_free() -> None:
    bars = _closes([10.0, 10.0, 13.0])
    out = compute_indicator(IndicatorSpec(id="s", type="sma", params={"period": 3}), bars)
    assert out["value"].iloc[2] == pytest.approx(11.0)
    assert out["distance"].iloc[2] == pytest.approx(2.0 / 11.0)


@pytest.mark.parametrize("indicator_type", sorted(INDICATOR_OUTPUTS))
def test_every_indicator_has_its_outputs_and_warms_up(indicator_type: str) -> None:
    bars = synthetic_bars("SYNTH", "1h", 200, 3)
    out = compute_indicator(IndicatorSpec(id="x", type=indicator_type), bars)
    assert tuple(out.columns) == INDICATOR_OUTPUTS[indicator_type]
    assert out.index.equals(bars.index)
    assert out.iloc[-50:].notna().all().all()
    assert str(out.dtypes.iloc[0]) == "float64"


def test_default_strategy_outputs_exist() -> None:
    for fs in default_strategy().fuzzy_sets:
        ind_id, _, output = fs.input.partition(".")
        ind = next(i for i in default_strategy().indicators if i.id == ind_id)
        assert not output or output in INDICATOR_OUTPUTS[ind.type]


def test_param_validation() -> None:
    assert resolve_params("rsi", {}) == {"period": 14}
    with pytest.raises(ParamError, match="no parameter"):
        resolve_params("rsi", {"length": 3})
    with pytest.raises(ParamError, match="whole number"):
        resolve_params("sma", {"period": 2.5})
    with pytest.raises(ParamError, match="shorter"):
        resolve_params("macd", {"fast": 30, "slow": 26})
