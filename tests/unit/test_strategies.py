"""Rule strategies: the registry, parameter checking, and each strategy's signals."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from shared.errors import InvalidArgumentError
from shared.pipeline.indicators import ema, rsi, sma
from shared.pipeline.labels import CLASSES
from shared.pipeline.synthetic import synthetic_bars
from shared.strategies import (
    STRATEGIES,
    ParamSpec,
    get_strategy,
    hold_positions,
    list_strategies,
    resolve_params,
    signals_from_classes,
)

NAMES = ("bollinger_breakout", "liquidity_sweep", "rsi_reversion", "sma_crossover")


def frame(close: list[float] | np.ndarray, **columns: np.ndarray) -> pd.DataFrame:
    c = np.asarray(close, dtype=np.float64)
    data = {"open": c, "high": c, "low": c, "close": c, "volume": np.ones(len(c))}
    data.update(columns)
    index = pd.date_range("2024-01-01", periods=len(c), freq="1h", tz="UTC")
    return pd.DataFrame(data, index=index)


def test_registry_lists_every_strategy_with_a_description() -> None:
    assert tuple(s.name for s in list_strategies()) == NAMES
    for strategy in list_strategies():
        assert len(strategy.description) > 80 and "\n" not in strategy.description
        assert all(p.description for p in strategy.params)
        defaults = resolve_params(strategy, {})
        assert defaults == {p.name: p.default for p in strategy.params}


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        get_strategy("moon_phase")
    assert err.value.field == "strategy"
    assert "'moon_phase'" in err.value.message and all(n in err.value.message for n in NAMES)


def resolve_error(name: str, raw: Mapping[str, object]) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as err:
        resolve_params(get_strategy(name), raw)
    return err.value


def test_params_are_coerced_and_checked() -> None:
    sma_cross = get_strategy("sma_crossover")
    assert resolve_params(sma_cross, {"fast": "12", "slow": 30.0, "ma": "ema"}) == {
        "fast": 12,
        "slow": 30,
        "ma": "ema",
    }
    assert resolve_params(get_strategy("rsi_reversion"), {"lower": "25"})["lower"] == 25.0

    err = resolve_error("sma_crossover", {"fats": 5})
    assert err.field == "params.fats" and "known: fast, slow, ma" in err.message
    err = resolve_error("sma_crossover", {"fast": 12.5})
    assert err.field == "params.fast" and "whole number" in err.message
    err = resolve_error("sma_crossover", {"fast": 1})
    assert err.field == "params.fast" and "[2, 500]" in err.message
    err = resolve_error("sma_crossover", {"slow": "twenty"})
    assert err.field == "params.slow" and "'twenty'" in err.message
    err = resolve_error("sma_crossover", {"fast": True})
    assert err.field == "params.fast"
    err = resolve_error("sma_crossover", {"ma": "wma"})
    assert err.field == "params.ma" and "'sma', 'ema'" in err.message
    err = resolve_error("rsi_reversion", {"lower": float("nan")})
    assert err.field == "params.lower"


def test_constraints_between_params() -> None:
    err = resolve_error("sma_crossover", {"fast": 30, "slow": 20})
    assert err.field == "params.fast" and "fast (30)" in err.message and "slow (20)" in err.message
    err = resolve_error("rsi_reversion", {"lower": 50, "upper": 50})
    assert err.field == "params.lower"


def test_bool_params_coerce() -> None:
    class WithFlag:
        name = "flagged"
        description = "test"
        params = (ParamSpec(name="on", type="bool", default=False),)

        def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> np.ndarray:
            return np.zeros(len(bars), dtype=np.int8)

    assert resolve_params(WithFlag(), {"on": "true"}) == {"on": True}
    assert resolve_params(WithFlag(), {"on": 0}) == {"on": False}
    with pytest.raises(InvalidArgumentError) as err:
        resolve_params(WithFlag(), {"on": "maybe"})
    assert err.value.field == "params.on" and "true or false" in err.value.message


@pytest.mark.parametrize("name", NAMES)
def test_signals_never_look_ahead(name: str) -> None:
    """The signals of the first k bars do not change when later bars are added."""
    bars = synthetic_bars("X", "1h", 3_000, seed=11)
    strategy = STRATEGIES[name]
    params = resolve_params(strategy, {})
    full = strategy.signals(bars, params)
    assert full.dtype == np.int8 and len(full) == len(bars)
    assert set(np.unique(full)) <= {-1, 0, 1} and len(np.unique(full)) >= 2
    for k in (500, 1_234, 2_999):
        assert np.array_equal(strategy.signals(bars.iloc[:k], params), full[:k]), k


def test_sma_crossover_follows_the_averages() -> None:
    bars = synthetic_bars("X", "1h", 500, seed=3)
    close = bars["close"]
    for ma, average in (("sma", sma), ("ema", ema)):
        params = resolve_params(get_strategy("sma_crossover"), {"fast": 5, "slow": 15, "ma": ma})
        got = get_strategy("sma_crossover").signals(bars, params)
        fast, slow = average(close, 5).to_numpy(), average(close, 15).to_numpy()
        assert (got[:14] == 0).all()
        assert np.array_equal(got[14:], np.where(fast[14:] > slow[14:], 1, -1))


def test_rsi_reversion_buys_oversold_and_exits_at_the_midline() -> None:
    close = np.concatenate([np.full(5, 100.0), 100 - np.arange(1, 8) * 2, 86 + np.arange(1, 9)])
    close = close + np.arange(len(close)) * 1e-6  # break ties
    strategy = get_strategy("rsi_reversion")
    params = resolve_params(strategy, {"period": 3, "lower": 30, "upper": 70})
    got = strategy.signals(frame(close), params)
    value = rsi(pd.Series(close), 3).to_numpy()
    first_long = int(np.argmax(value < 30))
    assert got[first_long] == 1 and (got[:first_long] <= 0).all()
    back = first_long + int(np.argmax(value[first_long:] >= 50))
    assert (got[first_long:back] == 1).all() and got[back] == 0


def test_bollinger_breakout_enters_outside_the_bands_and_exits_at_the_middle() -> None:
    close = np.array([10, 10.1, 9.9, 10, 10.1, 9.9, 10, 12, 12.5, 11, 9.5, 9.0, 7.0, 8, 10.5])
    strategy = get_strategy("bollinger_breakout")
    got = strategy.signals(frame(close), resolve_params(strategy, {"period": 5, "std": 1.5}))
    assert (got[:7] == 0).all()
    assert got[7] == 1  # 12 breaks far above the band of ~10
    middle = pd.Series(close).rolling(5).mean().to_numpy()
    exit_bar = 7 + int(np.argmax(close[7:] < middle[7:]))
    assert (got[7:exit_bar] == 1).all() and got[exit_bar] != 1
    assert -1 in got[exit_bar:]  # the slide to 7 breaks the lower band


def test_liquidity_sweep_fades_a_high_swept_on_volume() -> None:
    n = 40
    close = np.full(n, 100.0)
    high, low, volume = close + 1, close - 1, np.full(n, 10.0)
    high[25], volume[25] = 103.0, 40.0  # pierces the 101 swing high by ~2 % on 4x volume
    close[26] = 100.5  # back below the swept level the bar after
    high[26] = 101.0
    bars = frame(close, high=high, low=low, volume=volume)
    strategy = get_strategy("liquidity_sweep")
    params = resolve_params(
        strategy,
        {"lookback": 10, "pierce_depth": 0.01, "volume_spike_threshold": 2.0,
         "reversal_candles": 3, "hold_candles": 5},
    )  # fmt: skip
    got = strategy.signals(bars, params)
    # The sweep bar itself closes back at 100 < 101, and so do the next two bars of the
    # 3-bar window: short signals at 25, 26, 27; held 5 bars from the last one.
    assert (got[:25] == 0).all()
    assert (got[25:32] == -1).all() and (got[32:] == 0).all()
    quiet = strategy.signals(bars.assign(volume=10.0), params)  # no volume spike: no trade
    assert (quiet == 0).all()
    shallow = resolve_params(strategy, {**params, "pierce_depth": 0.05})
    assert (strategy.signals(bars, shallow) == 0).all()


def test_hold_positions() -> None:
    t, f = True, False
    got = hold_positions(
        np.array([f, t, f, f, f, f, t, f]),
        np.array([f, f, f, t, f, f, t, f]),
        np.array([f, f, f, f, f, f, f, t]),
        np.array([f, f, f, f, t, f, f, f]),
    )
    # Long at 1, flipped short at 3, short exit at 4, both entries at 6 change nothing.
    assert got.tolist() == [0, 1, 1, -1, 0, 0, 0, 0]
    timed = hold_positions(
        np.array([t, f, f, f]), np.zeros(4, bool), np.zeros(4, bool), np.zeros(4, bool), 2
    )
    assert timed.tolist() == [1, 1, 0, 0]


def test_model_classes_become_signals() -> None:
    assert CLASSES == ("SELL", "HOLD", "BUY")
    assert signals_from_classes(np.array([0, 1, 2, -1, 2])).tolist() == [-1, 0, 1, 0, 1]
    assert signals_from_classes(["BUY", "SELL", "HOLD"]).tolist() == [1, -1, 0]
    other_order = ("BUY", "HOLD", "SELL")
    assert signals_from_classes(np.array([0, 2]), other_order).tolist() == [1, -1]
    assert signals_from_classes(np.array([], dtype=np.int64)).dtype == np.int8
    with pytest.raises(InvalidArgumentError) as err:
        signals_from_classes(["BUY", "MOON"])
    assert err.value.field == "classes" and "'MOON'" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        signals_from_classes(np.array([3]))
    assert err.value.field == "classes"
    with pytest.raises(InvalidArgumentError) as err:
        signals_from_classes(np.array([0]), ("UP", "DOWN"))
    assert err.value.field == "class_names"
