"""Indicators against values worked by hand (conventions: see shared.pipeline.indicators).

Three kinds of reference, none of which calls or mirrors the vectorised code:

- hand-worked small cases, the arithmetic written out beside the numbers;
- Wilder's published RSI example;
- plain-Python loop implementations of the textbook definitions (``_ref_*``), run bar by bar
  over a synthetic market and compared output by output. ADX's reference uses Wilder's running
  *sums* (TR14 = TR14 - TR14/14 + TR), not the averages the implementation smooths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from shared.pipeline import indicators
from shared.pipeline.indicators import (
    INDICATOR_OUTPUTS,
    INDICATOR_PARAMS,
    INDICATOR_TYPES,
    PARAM_ALIASES,
    TYPE_ALIASES,
    ParamError,
    canonical_type,
    compute_indicator,
    ema,
    resolve_params,
    rsi,
    sma,
    wma,
)
from shared.pipeline.market import synthetic_bars
from shared.pipeline.validation import validate_request
from shared.spec import (
    FuzzySetSpec,
    IndicatorSpec,
    SpecError,
    StrategySpec,
    TrainingRequest,
    default_strategy,
)

NAN = math.nan
Floats = list[float]


def _bars(
    high: Sequence[float],
    low: Sequence[float],
    close: Sequence[float],
    volume: Sequence[float] | None = None,
) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(close), freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "open": list(close),
            "high": list(high),
            "low": list(low),
            "close": list(close),
            "volume": [1.0] * len(close) if volume is None else list(volume),
        },
        index=index,
        dtype=np.float64,
    )


def _closes(values: list[float]) -> pd.DataFrame:
    return _bars(values, values, values)


def _run(indicator_type: str, bars: pd.DataFrame, **params: float) -> pd.DataFrame:
    return compute_indicator(IndicatorSpec(id="x", type=indicator_type, params=params), bars)


def _leading_nans(values: pd.Series) -> int:
    valid = values.notna().to_numpy()
    return int(np.argmax(valid)) if valid.any() else len(valid)


# ---------------------------------------------------------------------------------------------
# Hand-worked cases


def test_sma_by_hand() -> None:
    out = sma(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 3)
    assert out.isna().tolist() == [True, True, False, False, False]
    assert out.iloc[2:].tolist() == [2.0, 3.0, 4.0]


def test_sma_distance_is_scale_free() -> None:
    bars = _closes([10.0, 10.0, 13.0])
    out = compute_indicator(IndicatorSpec(id="s", type="sma", params={"period": 3}), bars)
    assert out["value"].iloc[2] == pytest.approx(11.0)
    assert out["distance"].iloc[2] == pytest.approx(2.0 / 11.0)


def test_ema_is_seeded_with_the_sma() -> None:
    # n=3, alpha = 2/(3+1) = 0.5; seed at row 2 = mean(2, 4, 6) = 4
    # row 3: 0.5*8 + 0.5*4 = 6; row 4: 0.5*12 + 0.5*6 = 9
    out = ema(pd.Series([2.0, 4.0, 6.0, 8.0, 12.0]), 3)
    assert out.iloc[:2].isna().all()
    assert out.iloc[2:].tolist() == [4.0, 6.0, 9.0]


def test_wma_by_hand() -> None:
    # WMA(3), weights 1, 2, 3 (newest 3), divisor 6:
    # row 2: (1*1 + 2*2 + 3*4)/6 = 17/6; row 3: (1*2 + 2*4 + 3*8)/6 = 34/6
    out = _run("wma", _closes([1.0, 2.0, 4.0, 8.0]), period=3)
    assert list(out.columns) == ["value", "distance"]
    assert out["value"].isna().tolist() == [True, True, False, False]
    assert out["value"].iloc[2:].to_numpy() == pytest.approx([17 / 6, 34 / 6], abs=1e-12)
    assert out["distance"].iloc[3] == pytest.approx(8.0 / (34 / 6) - 1.0)
    # period 1 is the close itself
    assert wma(pd.Series([3.0, 5.0]), 1).tolist() == [3.0, 5.0]


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
    assert list(out.columns) == ["line", "signal", "histogram", "histogram_pct"]
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


def test_macd_histogram_pct_by_hand() -> None:
    # closes 1, 2, 3, 5; fast 2, slow 3, signal 2
    # EMA2 (alpha 2/3): row1 1.5, row2 2/3*3 + 1/3*1.5 = 2.5, row3 2/3*5 + 1/3*2.5 = 25/6
    # EMA3 (alpha 1/2): row2 2, row3 0.5*5 + 0.5*2 = 3.5
    # line: row2 0.5, row3 25/6 - 21/6 = 2/3; signal seeded at row3 = mean(0.5, 2/3) = 7/12
    # histogram row3 = 2/3 - 7/12 = 1/12; histogram_pct = (1/12)/5 = 1/60
    spec = IndicatorSpec(id="m", type="macd", params={"fast": 2, "slow": 3, "signal": 2})
    out = compute_indicator(spec, _closes([1.0, 2.0, 3.0, 5.0]))
    assert out["line"].iloc[3] == pytest.approx(2 / 3)
    assert out["signal"].iloc[3] == pytest.approx(7 / 12)
    assert out["histogram"].iloc[3] == pytest.approx(1 / 12)
    assert out["histogram_pct"].iloc[3] == pytest.approx(1 / 60)
    assert out["histogram_pct"].iloc[:3].isna().all()


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
    assert out.iloc[:2].isna().all().all()


# bars for the oscillators: high, low, close
_OSC_HIGH = [10.0, 12.0, 11.0, 13.0, 14.0]
_OSC_LOW = [8.0, 9.0, 9.0, 10.0, 11.0]
_OSC_CLOSE = [9.0, 11.0, 10.0, 12.0, 11.0]


def test_stochastic_by_hand() -> None:
    # k_period 3: row2 HH = max(10, 12, 11) = 12, LL = min(8, 9, 9) = 8 -> 100*(10-8)/4 = 50
    # row3 HH = 13, LL = 9 -> 100*(12-9)/4 = 75; row4 HH = 14, LL = 9 -> 100*(11-9)/5 = 40
    # %D(2): row3 (50+75)/2 = 62.5, row4 (75+40)/2 = 57.5
    bars = _bars(_OSC_HIGH, _OSC_LOW, _OSC_CLOSE)
    out = _run("stochastic", bars, k_period=3, d_period=2)
    assert list(out.columns) == ["k", "d"]
    assert out["k"].isna().tolist() == [True, True, False, False, False]
    assert out["k"].iloc[2:].to_numpy() == pytest.approx([50.0, 75.0, 40.0])
    assert out["d"].isna().tolist() == [True, True, True, False, False]
    assert out["d"].iloc[3:].to_numpy() == pytest.approx([62.5, 57.5])
    # smooth_k 2 (slow stochastic): %K row3 = (50+75)/2 = 62.5, row4 = (75+40)/2 = 57.5
    # %D(2) row4 = (62.5+57.5)/2 = 60
    slow = _run("stochastic", bars, k_period=3, d_period=2, smooth_k=2)
    assert slow["k"].isna().tolist() == [True, True, True, False, False]
    assert slow["k"].iloc[3:].to_numpy() == pytest.approx([62.5, 57.5])
    assert slow["d"].isna().tolist() == [True, True, True, True, False]
    assert slow["d"].iloc[4] == pytest.approx(60.0)


def test_williams_r_by_hand() -> None:
    # period 3: row2 -100*(12-10)/(12-8) = -50; row3 -100*(13-12)/(13-9) = -25
    # row4 -100*(14-11)/(14-9) = -60
    out = _run("williams_r", _bars(_OSC_HIGH, _OSC_LOW, _OSC_CLOSE), period=3)
    assert out["value"].isna().tolist() == [True, True, False, False, False]
    assert out["value"].iloc[2:].to_numpy() == pytest.approx([-50.0, -25.0, -60.0])


def test_roc_and_momentum_by_hand() -> None:
    bars = _closes([10.0, 11.0, 13.0, 12.0])
    roc = _run("roc", bars, period=2)["value"]
    momentum = _run("momentum", bars, period=2)["value"]
    # ROC(2): 100*(13/10 - 1) = 30, 100*(12/11 - 1) = 9.0909...
    assert roc.isna().tolist() == [True, True, False, False]
    assert roc.iloc[2:].to_numpy() == pytest.approx([30.0, 100 / 11])
    # Momentum(2): 13 - 10 = 3, 12 - 11 = 1
    assert momentum.isna().tolist() == [True, True, False, False]
    assert momentum.iloc[2:].to_numpy() == pytest.approx([3.0, 1.0])


def test_obv_by_hand() -> None:
    # closes 10, 11 (up: +200), 11 (unchanged: +0), 10 (down: -400), 12 (up: +500)
    bars = _bars([10, 11, 11, 10, 12], [10, 11, 11, 10, 12], [10, 11, 11, 10, 12])
    bars["volume"] = [100.0, 200.0, 300.0, 400.0, 500.0]
    out = _run("obv", bars)
    assert out["value"].tolist() == [0.0, 200.0, 200.0, -200.0, 300.0]


def test_cci_by_hand() -> None:
    # high = low = close, so TP = close. period 3.
    # row2: window 1, 2, 6: mean 3, mean |dev| = (2+1+3)/3 = 2 -> (6-3)/(0.015*2) = 100
    # row3: window 2, 6, 3: mean 11/3, |dev| 5/3, 7/3, 2/3 -> mean 14/9
    #       -> (3 - 11/3)/(0.015*14/9) = (-2/3)*(9/0.21) = -6/0.21 = -28.571...
    out = _run("cci", _closes([1.0, 2.0, 6.0, 3.0]), period=3)
    assert out["value"].isna().tolist() == [True, True, False, False]
    assert out["value"].iloc[2] == pytest.approx(100.0)
    assert out["value"].iloc[3] == pytest.approx(-6 / 0.21)


def test_cci_uses_the_typical_price() -> None:
    # TP = (H+L+C)/3: (12+6+9)/3 = 9, (15+9+12)/3 = 12, (18+12+15)/3 = 15 -> mean 12,
    # mean |dev| = (3+0+3)/3 = 2 -> (15-12)/(0.015*2) = 100
    out = _run("cci", _bars([12, 15, 18], [6, 9, 12], [9, 12, 15]), period=3)
    assert out["value"].iloc[2] == pytest.approx(100.0)


def test_adx_by_hand() -> None:
    # period 2 (alpha 1/2).
    # bar  H     L   C   up    down  +DM  -DM  TR
    # 0    10    8   9   -     -     -    -    -   (needs the previous bar)
    # 1    11    9  10   1     -1    1    0    max(2, 2, 0) = 2
    # 2    12   10  11   1     -1    1    0    max(2, 2, 0) = 2
    # 3    11    8   9   -1    2     0    2    max(3, 0, 3) = 3
    # 4    12    9  11   1     -1    1    0    max(3, 3, 0) = 3
    # 5    12.5 10  12   0.5   -1    0.5  0    max(2.5, 1.5, 1) = 2.5
    # Wilder(TR): row2 mean(2, 2) = 2, row3 (2+3)/2 = 2.5, row4 (2.5+3)/2 = 2.75,
    #             row5 (2.75+2.5)/2 = 2.625
    # Wilder(+DM): 1, 0.5, 0.75, 0.625; Wilder(-DM): 0, 1, 0.5, 0.25
    # +DI: 50, 20, 300/11, 500/21; -DI: 0, 40, 200/11, 200/21
    # DX = 100*|+DI - -DI|/(+DI + -DI): 100, 100/3, 20, 300/7
    # ADX: row3 mean(100, 100/3) = 200/3, row4 (200/3 + 20)/2 = 130/3,
    #      row5 (130/3 + 300/7)/2 = 905/21
    bars = _bars(
        high=[10, 11, 12, 11, 12, 12.5], low=[8, 9, 10, 8, 9, 10], close=[9, 10, 11, 9, 11, 12]
    )
    out = _run("adx", bars, period=2)
    assert list(out.columns) == ["adx", "plus_di", "minus_di"]
    assert out["plus_di"].isna().tolist() == [True, True, False, False, False, False]
    assert out["plus_di"].iloc[2:].to_numpy() == pytest.approx([50.0, 20.0, 300 / 11, 500 / 21])
    assert out["minus_di"].iloc[2:].to_numpy() == pytest.approx([0.0, 40.0, 200 / 11, 200 / 21])
    assert out["adx"].isna().tolist() == [True, True, True, False, False, False]
    assert out["adx"].iloc[3:].to_numpy() == pytest.approx([200 / 3, 130 / 3, 905 / 21])


def test_mfi_by_hand() -> None:
    # bar  H   L   C   V    TP  change  flow = TP*V
    # 0    10  8   9   100  9   -
    # 1    12  10  11  200  11  up      +2200
    # 2    11  9   10  100  10  down    -1000
    # 3    13  11  12  300  12  up      +3600
    # 4    13  11  12  50   12  none    (neither)
    # 5    14  12  13  10   13  up      +130
    # MFI(2) = 100*pos/(pos+neg) over the last 2 changes:
    # row2 100*2200/3200 = 68.75; row3 100*3600/4600; row4 neg 0 -> 100; row5 -> 100
    bars = _bars(
        high=[10, 12, 11, 13, 13, 14],
        low=[8, 10, 9, 11, 11, 12],
        close=[9, 11, 10, 12, 12, 13],
        volume=[100, 200, 100, 300, 50, 10],
    )
    out = _run("mfi", bars, period=2)
    assert out["value"].isna().tolist() == [True, True, False, False, False, False]
    assert out["value"].iloc[2:].to_numpy() == pytest.approx([68.75, 3600 / 46, 100.0, 100.0])


def test_mfi_is_exactly_100_once_a_huge_negative_flow_leaves_the_window() -> None:
    # A 1e15 negative flow at row 2, then only rises: rolling sums must not keep a residue
    # (which would give 99.99999... or a tiny negative flow).
    closes = [100.0, 101.0, 50.0, 51.0, 52.0, 53.0, 54.0]
    volume = [1.0, 1.0, 2e13, 0.3, 0.7, 0.1, 0.9]
    out = _run("mfi", _bars(closes, closes, closes, volume), period=2)["value"]
    assert out.iloc[2] == pytest.approx(100 * 101 / (101 + 1e15))
    assert out.iloc[4:].tolist() == [100.0, 100.0, 100.0]


def test_vwap_by_hand() -> None:
    # bar  H   L   C   TP  V    TP*V
    # 0    11  9   10  10  100  1000
    # 1    13  11  12  12  300  3600
    # 2    12  10  11  11  0    0
    # 3    15  13  14  14  100  1400
    # cumulative: 1000/100 = 10, 4600/400 = 11.5, 4600/400 = 11.5, 6000/500 = 12
    # rolling 2: -, 4600/400 = 11.5, 3600/300 = 12, 1400/100 = 14
    bars = _bars([11, 13, 12, 15], [9, 11, 10, 13], [10, 12, 11, 14], [100, 300, 0, 100])
    cumulative = _run("vwap", bars)
    assert list(cumulative.columns) == ["value", "distance"]
    assert cumulative["value"].to_numpy() == pytest.approx([10.0, 11.5, 11.5, 12.0])
    assert cumulative["distance"].iloc[3] == pytest.approx(14 / 12 - 1)
    rolling = _run("vwap", bars, period=2)
    assert rolling["value"].isna().tolist() == [True, False, False, False]
    assert rolling["value"].iloc[1:].to_numpy() == pytest.approx([11.5, 12.0, 14.0])


def test_vwap_without_volume_falls_back_to_the_mean_typical_price() -> None:
    # TPs 10, 12, 11, 14
    high, low, close = [11, 13, 12, 15], [9, 11, 10, 13], [10, 12, 11, 14]
    none = _bars(high, low, close, [0, 0, 0, 0])
    # cumulative, no volume yet: running mean 10, 11, 11, 11.75
    assert _run("vwap", none)["value"].to_numpy() == pytest.approx([10.0, 11.0, 11.0, 11.75])
    # rolling 2 with volume 100, 0, 0, 100: row2's window (rows 1-2) traded nothing ->
    # (12 + 11)/2 = 11.5; rows 1 and 3 are VWAPs of one traded bar
    some = _bars(high, low, close, [100, 0, 0, 100])
    out = _run("vwap", some, period=2)["value"]
    assert out.iloc[1:].to_numpy() == pytest.approx([10.0, 11.5, 14.0])


# ---------------------------------------------------------------------------------------------
# Plain-loop references over a synthetic market


def _ref_sma(x: Floats, n: int) -> Floats:
    out = [NAN] * len(x)
    for t in range(n - 1, len(x)):
        window = x[t - n + 1 : t + 1]
        if not any(math.isnan(v) for v in window):
            out[t] = sum(window) / n
    return out


def _ref_wma(x: Floats, n: int) -> Floats:
    out = [NAN] * len(x)
    for t in range(n - 1, len(x)):
        out[t] = sum((k + 1) * x[t - n + 1 + k] for k in range(n)) / (n * (n + 1) / 2)
    return out


def _ref_smooth(x: Floats, n: int, alpha: float) -> Floats:
    """Seeded with the mean of the first n valid values, then the recursion."""
    out = [NAN] * len(x)
    first = next((i for i, v in enumerate(x) if not math.isnan(v)), None)
    if first is None or first + n - 1 >= len(x):
        return out
    start = first + n - 1
    out[start] = sum(x[first : start + 1]) / n
    for t in range(start + 1, len(x)):
        out[t] = alpha * x[t] + (1 - alpha) * out[t - 1]
    return out


def _ref_ema(x: Floats, n: int) -> Floats:
    return _ref_smooth(x, n, 2 / (n + 1))


def _ref_wilder(x: Floats, n: int) -> Floats:
    return _ref_smooth(x, n, 1 / n)


def _ref_rsi(x: Floats, n: int) -> Floats:
    out = [NAN] * len(x)
    gains = [max(x[t] - x[t - 1], 0.0) for t in range(1, len(x))]
    losses = [max(x[t - 1] - x[t], 0.0) for t in range(1, len(x))]
    if len(gains) < n:
        return out
    avg_gain, avg_loss = sum(gains[:n]) / n, sum(losses[:n]) / n
    for t in range(n, len(x)):
        if t > n:
            avg_gain = (avg_gain * (n - 1) + gains[t - 1]) / n
            avg_loss = (avg_loss * (n - 1) + losses[t - 1]) / n
        if avg_loss == 0:
            out[t] = 100.0 if avg_gain > 0 else 50.0
        else:
            out[t] = 100 - 100 / (1 + avg_gain / avg_loss)
    return out


def _ref_true_range(h: Floats, lo: Floats, c: Floats) -> Floats:
    tr = [h[0] - lo[0]]
    for t in range(1, len(c)):
        tr.append(max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])))
    return tr


def _ref_stoch_raw(h: Floats, lo: Floats, c: Floats, n: int) -> Floats:
    out = [NAN] * len(c)
    for t in range(n - 1, len(c)):
        hh, ll = max(h[t - n + 1 : t + 1]), min(lo[t - n + 1 : t + 1])
        out[t] = 50.0 if hh == ll else 100 * (c[t] - ll) / (hh - ll)
    return out


def _ref_cci(tp: Floats, n: int) -> Floats:
    out = [NAN] * len(tp)
    for t in range(n - 1, len(tp)):
        window = tp[t - n + 1 : t + 1]
        mean = sum(window) / n
        mad = sum(abs(v - mean) for v in window) / n
        out[t] = 0.0 if mad == 0 else (tp[t] - mean) / (0.015 * mad)
    return out


def _ref_adx(h: Floats, lo: Floats, c: Floats, n: int) -> dict[str, Floats]:
    """Wilder's own bookkeeping: running sums TR14, +DM14, -DM14."""
    size = len(c)
    tr, pdm, mdm = [NAN] * size, [NAN] * size, [NAN] * size
    for t in range(1, size):
        up, down = h[t] - h[t - 1], lo[t - 1] - lo[t]
        pdm[t] = up if up > down and up > 0 else 0.0
        mdm[t] = down if down > up and down > 0 else 0.0
        tr[t] = max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1]))
    plus, minus, dx, adx = [NAN] * size, [NAN] * size, [NAN] * size, [NAN] * size
    tr_n = pdm_n = mdm_n = 0.0
    for t in range(n, size):
        if t == n:
            tr_n, pdm_n, mdm_n = sum(tr[1 : n + 1]), sum(pdm[1 : n + 1]), sum(mdm[1 : n + 1])
        else:
            tr_n = tr_n - tr_n / n + tr[t]
            pdm_n = pdm_n - pdm_n / n + pdm[t]
            mdm_n = mdm_n - mdm_n / n + mdm[t]
        plus[t] = 0.0 if tr_n == 0 else 100 * pdm_n / tr_n
        minus[t] = 0.0 if tr_n == 0 else 100 * mdm_n / tr_n
        total = plus[t] + minus[t]
        dx[t] = 0.0 if total == 0 else 100 * abs(plus[t] - minus[t]) / total
    for t in range(2 * n - 1, size):
        if t == 2 * n - 1:
            adx[t] = sum(dx[n : 2 * n]) / n
        else:
            adx[t] = (adx[t - 1] * (n - 1) + dx[t]) / n
    return {"adx": adx, "plus_di": plus, "minus_di": minus}


def _ref_mfi(tp: Floats, v: Floats, n: int) -> Floats:
    out = [NAN] * len(tp)
    for t in range(n, len(tp)):
        pos = neg = 0.0
        for j in range(t - n + 1, t + 1):
            if tp[j] > tp[j - 1]:
                pos += tp[j] * v[j]
            elif tp[j] < tp[j - 1]:
                neg += tp[j] * v[j]
        out[t] = 50.0 if pos + neg == 0 else 100 * pos / (pos + neg)
    return out


def _ref_vwap(tp: Floats, v: Floats, n: int) -> Floats:
    out = [NAN] * len(tp)
    for t in range(len(tp)):
        lo = 0 if n == 0 else t - n + 1
        if lo < 0:
            continue
        pv = sum(tp[j] * v[j] for j in range(lo, t + 1))
        vol = sum(v[lo : t + 1])
        out[t] = pv / vol if vol > 0 else sum(tp[lo : t + 1]) / (t + 1 - lo)
    return out


def _distance(close: Floats, value: Floats) -> Floats:
    return [c / v - 1 for c, v in zip(close, value, strict=True)]


def _reference(indicator_type: str, bars: pd.DataFrame, p: dict[str, float]) -> dict[str, Floats]:
    h, lo, c, v = (bars[col].tolist() for col in ("high", "low", "close", "volume"))
    tp = [(a + b + d) / 3 for a, b, d in zip(h, lo, c, strict=True)]
    n = int(p.get("period", 0))
    if indicator_type in ("sma", "ema", "wma"):
        ref = {"sma": _ref_sma, "ema": _ref_ema, "wma": _ref_wma}[indicator_type]
        value = ref(c, n)
        return {"value": value, "distance": _distance(c, value)}
    if indicator_type == "rsi":
        return {"value": _ref_rsi(c, n)}
    if indicator_type == "macd":
        fast, slow = _ref_ema(c, int(p["fast"])), _ref_ema(c, int(p["slow"]))
        line = [f - s for f, s in zip(fast, slow, strict=True)]
        signal = _ref_ema(line, int(p["signal"]))
        hist = [a - b for a, b in zip(line, signal, strict=True)]
        pct = [a / b for a, b in zip(hist, c, strict=True)]
        return {"line": line, "signal": signal, "histogram": hist, "histogram_pct": pct}
    if indicator_type == "bollinger":
        middle = _ref_sma(c, n)
        upper, lower, width, pct_b = [NAN] * len(c), [NAN] * len(c), [NAN] * len(c), [NAN] * len(c)
        for t in range(n - 1, len(c)):
            window = c[t - n + 1 : t + 1]
            std = math.sqrt(sum((x - middle[t]) ** 2 for x in window) / n)
            upper[t], lower[t] = middle[t] + p["std"] * std, middle[t] - p["std"] * std
            width[t] = (upper[t] - lower[t]) / middle[t]
            span = upper[t] - lower[t]
            pct_b[t] = 0.5 if span == 0 else (c[t] - lower[t]) / span
        return {
            "upper": upper,
            "middle": middle,
            "lower": lower,
            "width": width,
            "percent_b": pct_b,
        }
    if indicator_type == "atr":
        value = _ref_wilder(_ref_true_range(h, lo, c), n)
        return {"value": value, "relative": [a / b for a, b in zip(value, c, strict=True)]}
    if indicator_type == "stochastic":
        k = _ref_sma(_ref_stoch_raw(h, lo, c, int(p["k_period"])), int(p["smooth_k"]))
        return {"k": k, "d": _ref_sma(k, int(p["d_period"]))}
    if indicator_type == "roc":
        return {"value": [NAN] * n + [100 * (c[t] / c[t - n] - 1) for t in range(n, len(c))]}
    if indicator_type == "momentum":
        return {"value": [NAN] * n + [c[t] - c[t - n] for t in range(n, len(c))]}
    if indicator_type == "williams_r":
        return {"value": [x - 100 for x in _ref_stoch_raw(h, lo, c, n)]}  # %R = %K - 100
    if indicator_type == "cci":
        return {"value": _ref_cci(tp, n)}
    if indicator_type == "adx":
        return _ref_adx(h, lo, c, n)
    if indicator_type == "obv":
        obv = [0.0]
        for t in range(1, len(c)):
            sign = (c[t] > c[t - 1]) - (c[t] < c[t - 1])
            obv.append(obv[-1] + sign * v[t])
        return {"value": obv}
    if indicator_type == "mfi":
        return {"value": _ref_mfi(tp, v, n)}
    if indicator_type == "vwap":
        value = _ref_vwap(tp, v, n)
        return {"value": value, "distance": _distance(c, value)}
    raise AssertionError(f"no reference for {indicator_type}")


_REFERENCE_CASES: list[tuple[str, dict[str, float]]] = [
    *((t, {}) for t in INDICATOR_TYPES),  # defaults
    ("sma", {"period": 5}),
    ("ema", {"period": 5}),
    ("wma", {"period": 7}),
    ("rsi", {"period": 5}),
    ("macd", {"fast": 3, "slow": 7, "signal": 4}),
    ("bollinger", {"period": 5, "std": 1.5}),
    ("atr", {"period": 5}),
    ("stochastic", {"k_period": 5, "d_period": 3, "smooth_k": 3}),
    ("roc", {"period": 3}),
    ("momentum", {"period": 3}),
    ("williams_r", {"period": 5}),
    ("cci", {"period": 5}),
    ("adx", {"period": 5}),
    ("mfi", {"period": 5}),
    ("vwap", {"period": 7}),
]


def _assert_matches(got: pd.Series, expected: Floats) -> None:
    want = np.asarray(expected, dtype=np.float64)
    assert got.isna().tolist() == np.isnan(want).tolist()
    valid = ~np.isnan(want)
    assert got.to_numpy()[valid] == pytest.approx(want[valid], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("indicator_type", "params"), _REFERENCE_CASES)
def test_matches_plain_loop_reference(indicator_type: str, params: dict[str, float]) -> None:
    bars = synthetic_bars("SYNTH", "1h", 240, 5)
    out = _run(indicator_type, bars, **params)
    expected = _reference(indicator_type, bars, resolve_params(indicator_type, params))
    assert tuple(expected) == INDICATOR_OUTPUTS[indicator_type]
    for output, values in expected.items():
        _assert_matches(out[output], values)


def test_every_indicator_has_a_reference_case() -> None:
    assert {t for t, _ in _REFERENCE_CASES} == set(INDICATOR_TYPES)


def test_wma_long_period_form_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # Periods past _WMA_DIRECT_MAX take the two-rolling-sums form; force it on small ones.
    bars = synthetic_bars("SYNTH", "1h", 240, 5)
    closes = bars["close"].tolist()
    monkeypatch.setattr(indicators, "_WMA_DIRECT_MAX", 1)
    for period in (2, 3, 17):
        _assert_matches(wma(bars["close"], period), _ref_wma(closes, period))


def test_cci_blocks_of_windows_join_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The mean deviation is computed a block of windows at a time; make blocks tiny and odd.
    bars = synthetic_bars("SYNTH", "1h", 100, 5)
    tp = ((bars["high"] + bars["low"] + bars["close"]) / 3).tolist()
    monkeypatch.setattr(indicators, "_MAD_CHUNK", 11)
    _assert_matches(_run("cci", bars, period=4)["value"], _ref_cci(tp, 4))


# ---------------------------------------------------------------------------------------------
# Warm-up, short and flat series


_WARMUP: dict[str, dict[str, int]] = {
    "sma": {"value": 19, "distance": 19},
    "ema": {"value": 19, "distance": 19},
    "wma": {"value": 19, "distance": 19},
    "rsi": {"value": 14},
    "macd": {"line": 25, "signal": 33, "histogram": 33, "histogram_pct": 33},
    "bollinger": {"upper": 19, "middle": 19, "lower": 19, "width": 19, "percent_b": 19},
    "atr": {"value": 13, "relative": 13},
    "stochastic": {"k": 13, "d": 15},
    "roc": {"value": 10},
    "momentum": {"value": 10},
    "williams_r": {"value": 13},
    "cci": {"value": 19},
    "adx": {"adx": 27, "plus_di": 14, "minus_di": 14},
    "obv": {"value": 0},
    "mfi": {"value": 14},
    "vwap": {"value": 0, "distance": 0},
}
"""Leading NaN rows of every output with default parameters."""


def test_the_warm_up_table_covers_every_indicator() -> None:
    assert set(_WARMUP) == set(INDICATOR_TYPES) == set(INDICATOR_PARAMS)
    for indicator_type, outputs in _WARMUP.items():
        assert tuple(outputs) == INDICATOR_OUTPUTS[indicator_type]


@pytest.mark.parametrize("indicator_type", sorted(INDICATOR_OUTPUTS))
def test_every_indicator_has_its_outputs_and_warms_up(indicator_type: str) -> None:
    bars = synthetic_bars("SYNTH", "1h", 200, 3)
    out = compute_indicator(IndicatorSpec(id="x", type=indicator_type), bars)
    assert tuple(out.columns) == INDICATOR_OUTPUTS[indicator_type]
    assert out.index.equals(bars.index)
    assert (out.dtypes == np.float64).all()
    for output, warmup in _WARMUP[canonical_type(indicator_type)].items():
        values = out[output]
        assert values.iloc[:warmup].isna().all(), output
        assert values.iloc[warmup:].notna().all(), output
        assert np.isfinite(values.iloc[warmup:].to_numpy()).all(), output


_SHORT_PARAMS: dict[str, tuple[dict[str, float], dict[str, int]]] = {
    "macd": ({"fast": 3, "slow": 5, "signal": 4}, {"line": 4, "signal": 7}),
    "stochastic": ({"k_period": 5, "d_period": 3, "smooth_k": 2}, {"k": 5, "d": 7}),
    "adx": ({"period": 5}, {"adx": 9, "plus_di": 5, "minus_di": 5}),
    "mfi": ({"period": 5}, {"value": 5}),
    "cci": ({"period": 5}, {"value": 4}),
    "wma": ({"period": 5}, {"value": 4}),
    "vwap": ({"period": 5}, {"value": 4, "distance": 4}),
    "momentum": ({"period": 5}, {"value": 5}),
}


@pytest.mark.parametrize("indicator_type", sorted(_SHORT_PARAMS))
def test_warm_up_follows_the_parameters(indicator_type: str) -> None:
    params, warmups = _SHORT_PARAMS[indicator_type]
    out = _run(indicator_type, synthetic_bars("SYNTH", "1h", 60, 3), **params)
    for output, warmup in warmups.items():
        assert _leading_nans(out[output]) == warmup, output
        assert out[output].iloc[warmup:].notna().all(), output


@pytest.mark.parametrize("indicator_type", INDICATOR_TYPES)
def test_too_short_a_series_is_all_nan_not_zero(indicator_type: str) -> None:
    bars = synthetic_bars("SYNTH", "1h", 5, 3)
    out = compute_indicator(IndicatorSpec(id="x", type=indicator_type), bars)
    for output, warmup in _WARMUP[indicator_type].items():
        if warmup >= len(bars):
            assert out[output].isna().all(), output
        else:
            assert out[output].notna().all(), output


def _flat_bars(volume: float, rows: int = 80) -> pd.DataFrame:
    return _bars([100.0] * rows, [100.0] * rows, [100.0] * rows, [volume] * rows)


_FLAT_VALUES: dict[str, dict[str, float]] = {
    "sma": {"value": 100.0, "distance": 0.0},
    "ema": {"value": 100.0, "distance": 0.0},
    "wma": {"value": 100.0, "distance": 0.0},
    "rsi": {"value": 50.0},
    "macd": {"line": 0.0, "signal": 0.0, "histogram": 0.0, "histogram_pct": 0.0},
    "bollinger": {"upper": 100.0, "middle": 100.0, "lower": 100.0, "width": 0.0, "percent_b": 0.5},
    "atr": {"value": 0.0, "relative": 0.0},
    "stochastic": {"k": 50.0, "d": 50.0},
    "roc": {"value": 0.0},
    "momentum": {"value": 0.0},
    "williams_r": {"value": -50.0},
    "cci": {"value": 0.0},
    "adx": {"adx": 0.0, "plus_di": 0.0, "minus_di": 0.0},
    "obv": {"value": 0.0},
    "mfi": {"value": 50.0},
    "vwap": {"value": 100.0, "distance": 0.0},
}


@pytest.mark.parametrize("volume", [1000.0, 0.0])
@pytest.mark.parametrize("indicator_type", INDICATOR_TYPES)
def test_flat_market_gives_neutral_finite_values(indicator_type: str, volume: float) -> None:
    out = compute_indicator(IndicatorSpec(id="x", type=indicator_type), _flat_bars(volume))
    assert set(_FLAT_VALUES) == set(INDICATOR_TYPES)
    for output, expected in _FLAT_VALUES[indicator_type].items():
        values = out[output].dropna()
        assert len(values) == 80 - _WARMUP[indicator_type][output], output
        assert values.to_numpy() == pytest.approx([expected] * len(values), abs=1e-9), output


def test_flat_cci_window_after_movement_is_zero() -> None:
    # Only the last 3 bars are flat: the window mean and deviation must not leave a residue
    # whose ratio reads as a signal.
    out = _run("cci", _closes([0.1, 1e6, 0.3, 0.7, 0.7, 0.7]), period=3)["value"]
    assert out.iloc[5] == 0.0


@pytest.mark.parametrize("indicator_type", INDICATOR_TYPES)
def test_zero_volume_on_a_moving_market_is_finite(indicator_type: str) -> None:
    bars = synthetic_bars("SYNTH", "1h", 120, 3)
    bars["volume"] = 0.0
    out = compute_indicator(IndicatorSpec(id="x", type=indicator_type), bars)
    assert not np.isinf(out.to_numpy()).any()
    if indicator_type == "mfi":
        assert out["value"].dropna().eq(50.0).all()
    if indicator_type == "obv":
        assert out["value"].eq(0.0).all()
    if indicator_type == "vwap":
        tp = (bars["high"] + bars["low"] + bars["close"]) / 3
        assert out["value"].to_numpy() == pytest.approx(tp.expanding().mean().to_numpy())


_SCALE_FREE = [
    ("sma", "distance"),
    ("ema", "distance"),
    ("wma", "distance"),
    ("rsi", "value"),
    ("macd", "histogram_pct"),
    ("bollinger", "width"),
    ("bollinger", "percent_b"),
    ("atr", "relative"),
    ("stochastic", "k"),
    ("roc", "value"),
    ("williams_r", "value"),
    ("cci", "value"),
    ("adx", "adx"),
    ("adx", "plus_di"),
    ("mfi", "value"),
    ("vwap", "distance"),
]


@pytest.mark.parametrize(("indicator_type", "output"), _SCALE_FREE)
def test_scale_free_outputs_ignore_the_price_level(indicator_type: str, output: str) -> None:
    bars = synthetic_bars("SYNTH", "1h", 200, 3)
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    a = _run(indicator_type, bars)[output]
    b = _run(indicator_type, scaled)[output]
    assert a.isna().tolist() == b.isna().tolist()
    assert b.dropna().to_numpy() == pytest.approx(a.dropna().to_numpy(), rel=1e-7, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Catalogue, aliases, parameters


def test_default_strategy_outputs_exist() -> None:
    for fs in default_strategy().fuzzy_sets:
        ind_id, _, output = fs.input.partition(".")
        ind = next(i for i in default_strategy().indicators if i.id == ind_id)
        assert not output or output in INDICATOR_OUTPUTS[ind.type]


def test_existing_outputs_keep_their_order() -> None:
    # New outputs are appended, so an indicator id's default output never changes.
    assert INDICATOR_OUTPUTS["macd"][:3] == ("line", "signal", "histogram")
    assert INDICATOR_OUTPUTS["bollinger"][0] == "upper"
    assert INDICATOR_OUTPUTS["stochastic"] == ("k", "d")
    assert INDICATOR_OUTPUTS["adx"][0] == "adx"


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("bbands", "bollinger"),
        ("bollinger_bands", "bollinger"),
        ("bollingerbands", "bollinger"),
        ("stoch", "stochastic"),
        ("williams", "williams_r"),
        ("willr", "williams_r"),
        ("williamsr", "williams_r"),
        ("mom", "momentum"),
    ],
)
def test_type_aliases(alias: str, canonical: str) -> None:
    assert canonical_type(alias) == canonical
    assert INDICATOR_OUTPUTS[alias] == INDICATOR_OUTPUTS[canonical]
    bars = synthetic_bars("SYNTH", "1h", 120, 3)
    pd.testing.assert_frame_equal(_run(alias, bars), _run(canonical, bars))


def test_alias_tables_point_at_real_things() -> None:
    assert set(TYPE_ALIASES.values()) <= set(INDICATOR_TYPES)
    assert not set(TYPE_ALIASES) & set(INDICATOR_TYPES)
    for indicator_type, renames in PARAM_ALIASES.items():
        assert set(renames.values()) <= set(INDICATOR_PARAMS[indicator_type])
    assert canonical_type("rsi") == "rsi"


def test_ktrdr_parameter_names() -> None:
    bars = synthetic_bars("SYNTH", "1h", 120, 3)
    pd.testing.assert_frame_equal(
        _run("macd", bars, fast_period=5, slow_period=13, signal_period=4),
        _run("macd", bars, fast=5, slow=13, signal=4),
    )
    pd.testing.assert_frame_equal(
        _run("bbands", bars, period=10, multiplier=1.5),
        _run("bollinger", bars, period=10, std=1.5),
    )
    pd.testing.assert_frame_equal(
        _run("stoch", bars, k_period=9, d_period=3, smooth_k=3),
        _run("stochastic", bars, k_period=9, d_period=3, smooth_k=3),
    )
    assert resolve_params("bbands", {"multiplier": 3}) == {"period": 20, "std": 3.0}


def test_param_validation() -> None:
    assert resolve_params("rsi", {}) == {"period": 14}
    with pytest.raises(ParamError, match="no parameter"):
        resolve_params("rsi", {"length": 3})
    with pytest.raises(ParamError, match="whole number"):
        resolve_params("sma", {"period": 2.5})
    with pytest.raises(ParamError, match="shorter"):
        resolve_params("macd", {"fast": 30, "slow": 26})
    with pytest.raises(ValueError, match="unknown indicator type"):
        resolve_params("nope", {})


@pytest.mark.parametrize(
    ("indicator_type", "params", "key"),
    [
        ("bbands", {"length": 3}, "length"),
        ("stoch", {"period": 3}, "period"),
        ("obv", {"period": 3}, "period"),
        ("macd", {"fast_period": 30, "slow_period": 26}, "fast_period"),
        ("macd", {"fast": 3, "fast_period": 3}, "fast_period"),
        ("bollinger", {"multiplier": 0}, "multiplier"),
        ("bollinger", {"multiplier": math.inf}, "multiplier"),
        ("stochastic", {"smooth_k": 0}, "smooth_k"),
        ("stochastic", {"smooth_k": 1.5}, "smooth_k"),
        ("sma", {"period": 0}, "period"),
        ("adx", {"period": 0}, "period"),
        ("vwap", {"period": -1}, "period"),
        ("vwap", {"period": 2.5}, "period"),
        ("wma", {"period": 100_001}, "period"),
    ],
)
def test_bad_params_name_the_key_as_given(
    indicator_type: str, params: dict[str, float], key: str
) -> None:
    with pytest.raises(ParamError) as caught:
        resolve_params(indicator_type, params)
    assert caught.value.key == key


def test_vwap_period_zero_means_cumulative() -> None:
    assert resolve_params("vwap", {}) == {"period": 0.0}
    assert resolve_params("vwap", {"period": 5}) == {"period": 5.0}


def _request(indicator: IndicatorSpec, fuzzy_input: str) -> TrainingRequest:
    fs = FuzzySetSpec(input=fuzzy_input, name="low", shape="triangular", params=(0, 0.2, 0.5))
    strategy = StrategySpec(name="aliases", indicators=(indicator,), fuzzy_sets=(fs,))
    return TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=strategy)


def test_request_validation_accepts_aliases() -> None:
    bb = IndicatorSpec(id="bb", type="bbands", params={"period": 20, "multiplier": 2})
    validate_request(_request(bb, "bb.percent_b"))
    adx = IndicatorSpec(id="adx_14", type="adx", params={"period": 14})
    validate_request(_request(adx, "adx_14.minus_di"))
    bad = IndicatorSpec(id="bb", type="bbands", params={"length": 20})
    with pytest.raises(SpecError) as caught:
        validate_request(_request(bad, "bb.percent_b"))
    assert caught.value.field == "strategy.indicators[0].params.length"


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown indicator type"):
        compute_indicator(IndicatorSpec(id="x", type="bogus"), _closes([1.0, 2.0]))
