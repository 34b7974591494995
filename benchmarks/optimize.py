"""Optimization trials per second: ours against backtesting.py's ``Backtest.optimize``.

Both search the same grid of an SMA crossover's ``fast``/``slow`` (with ``fast < slow``) on the
same real bars (GOOG daily, shipped with backtesting.py), with the same cash, 0.2 % commission
per fill and whole-share sizing, maximizing ``Return [%]``, trials one after another (ours
``parallelism=1``; backtesting.py's process pool replaced by one thread). The two are run
interleaved, alternately first, in one process; the JSON gives each side's median seconds per
optimization, trials/s, their ratio with a bootstrap 95 % interval over the pairs, and whether
both chose the same best parameters.

The strategy is made trade-for-trade comparable as ``tests/integration/test_backtest_reference``
does: no position before bar ``slow`` (backtesting.py's first ``next()``), flat from the
second-to-last bar, always in the market in between.

Run: ``.venv/bin/python -m benchmarks.optimize [--quick] [--repeats N]``.
"""

from __future__ import annotations

import multiprocessing.dummy
import random
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from benchmarks.common import base_parser, median, report
from shared.backtest import BacktestSettings, Costs, Sizing
from shared.optimize import (
    Objective,
    OptimizationOutcome,
    OptimizerSettings,
    ParamRange,
    parse_constraint,
    run_optimization,
)
from shared.pipeline.market import read_market_file
from shared.strategies import ParamSpec, get_strategy
from shared.strategies.params import Signals, int_param

COMMISSION = 0.002
CASH = 10_000.0
STAT = "Return [%]"


def goog_file() -> Path:
    import backtesting  # type: ignore[import-untyped]

    return Path(backtesting.__file__).resolve().parent / "test" / "GOOG.csv"


class AlignedSmaCrossover:
    """``sma_crossover`` with backtesting.py's warm-up and end, so both make the same trades."""

    name = "sma_crossover_aligned"
    description = "sma_crossover, flat before bar `slow` and on the last two bars"

    def __init__(self) -> None:
        self._inner = get_strategy("sma_crossover")
        self.params: tuple[ParamSpec, ...] = self._inner.params

    def check(self, params: Mapping[str, object]) -> None:
        self._inner.check(params)  # type: ignore[attr-defined]

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        out = self._inner.signals(bars, params).copy()
        out[: int_param(params, "slow")] = 0
        out[-2:] = 0
        return out


def grid_ranges(quick: bool) -> tuple[range, range]:
    return (range(5, 35, 5), range(10, 110, 10)) if quick else (range(5, 55, 5), range(10, 210, 10))


def space_of(fast: range, slow: range) -> tuple[ParamRange, ...]:
    return (
        ParamRange(name="fast", type="int", low=fast.start, high=fast[-1], step=fast.step),
        ParamRange(name="slow", type="int", low=slow.start, high=slow[-1], step=slow.step),
    )


def feasible_points(fast: range, slow: range) -> int:
    return sum(1 for f in fast for s in slow if f < s)


def ours(bars: pd.DataFrame, fast: range, slow: range) -> OptimizationOutcome:
    return run_optimization(
        bars,
        AlignedSmaCrossover(),
        space_of(fast, slow),
        [parse_constraint("fast < slow")],
        Objective(stat=STAT),
        OptimizerSettings(sampler="grid", trials=None, seed=0),
        BacktestSettings(
            initial_cash=CASH,
            costs=Costs(commission_pct=COMMISSION),
            sizing=Sizing(whole_units=True),
        ),
    )


def reference_frame(bars: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Close": bars["close"].to_numpy(),
            "Volume": bars["volume"].to_numpy(),
        },
        index=bars.index.tz_localize(None),
    )


def _rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
    return np.asarray(pd.Series(values).rolling(period).mean(), dtype=np.float64)


def _one_thread_pool(processes: Any = None, initializer: Any = None, initargs: Any = ()) -> Any:
    return multiprocessing.dummy.Pool(1, initializer, initargs)


def theirs(
    frame: pd.DataFrame, fast: range, slow: range
) -> tuple[dict[str, int], dict[tuple[int, int], float]]:
    """backtesting.py's grid optimization, sequential: its best ``fast``/``slow`` and the
    objective at every grid point (its heatmap)."""
    import backtesting
    from backtesting import Backtest, Strategy

    rows = len(frame)

    class AlwaysInSmaCross(Strategy):  # type: ignore[misc]
        fast = 10
        slow = 20

        def init(self) -> None:
            self.fast_ma = self.I(_rolling_mean, self.data.Close, self.fast)
            self.slow_ma = self.I(_rolling_mean, self.data.Close, self.slow)

        def next(self) -> None:
            if len(self.data) >= rows - 1:
                self.position.close()
                return
            want = 1 if self.fast_ma[-1] > self.slow_ma[-1] else -1
            held = 0 if not self.position else (1 if self.position.is_long else -1)
            if want != held:
                (self.buy if want == 1 else self.sell)()

    test = Backtest(
        frame,
        AlwaysInSmaCross,
        cash=CASH,
        commission=COMMISSION,
        exclusive_orders=True,
        trade_on_close=False,
        finalize_trades=True,
    )
    saved = backtesting.Pool
    backtesting.Pool = _one_thread_pool  # sequential, as ours runs
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats, heatmap = test.optimize(
                fast=fast,
                slow=slow,
                constraint=lambda p: p.fast < p.slow,
                maximize=STAT,
                return_heatmap=True,
            )
    finally:
        backtesting.Pool = saved
    strategy = stats["_strategy"]
    scores = {(int(f), int(s)): float(v) for (f, s), v in heatmap.items()}
    return {"fast": int(strategy.fast), "slow": int(strategy.slow)}, scores


def ratio_ci95(ours_s: list[float], theirs_s: list[float], rounds: int = 2000) -> list[float]:
    """Bootstrap 95 % interval of median(theirs)/median(ours) over the interleaved pairs."""
    rng = random.Random(0)
    pairs = list(zip(ours_s, theirs_s, strict=True))
    ratios = []
    for _ in range(rounds):
        sample = rng.choices(pairs, k=len(pairs))
        ratios.append(median([b for _, b in sample]) / median([a for a, _ in sample]))
    ratios.sort()
    return [round(ratios[int(0.025 * rounds)], 3), round(ratios[int(0.975 * rounds) - 1], 3)]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "optimize")
    args = parser.parse_args()
    report("optimize", measure_optimize(quick=args.quick, repeats=args.repeats))


def measure_optimize(*, quick: bool, repeats: int = 0) -> dict[str, Any]:
    """The figures of one run (``benchmarks/backtest.py`` reports them too)."""
    repeats = repeats or (3 if quick else 9)
    fast, slow = grid_ranges(quick)
    bars = read_market_file(goog_file()).frame
    frame = reference_frame(bars)
    points = feasible_points(fast, slow)

    ours_best = ours(bars, fast, slow).best_params  # warm-up: numba compile, imports
    theirs_best, _ = theirs(frame, fast, slow)
    ours_s: list[float] = []
    theirs_s: list[float] = []
    for i in range(repeats):
        order = ("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")
        for name in order:
            started = time.perf_counter()
            if name == "ours":
                outcome = ours(bars, fast, slow)
                ours_s.append(time.perf_counter() - started)
                assert len([t for t in outcome.trials if t.state == "complete"]) == points
            else:
                theirs(frame, fast, slow)
                theirs_s.append(time.perf_counter() - started)

    ours_median, theirs_median = median(ours_s), median(theirs_s)
    return {
        "quick": quick,
        "data": "GOOG.csv daily",
        "bars": len(bars),
        "grid_size": points,
        "repeats": repeats,
        "optimize_trials_per_s": round(points / ours_median, 1),
        "backtesting_py_trials_per_s": round(points / theirs_median, 1),
        "optimize_ratio_vs_backtesting_py": round(theirs_median / ours_median, 3),
        "ratio_ci95": ratio_ci95(ours_s, theirs_s),
        "ours_median_s": round(ours_median, 4),
        "backtesting_py_median_s": round(theirs_median, 4),
        "ours_s": [round(t, 4) for t in ours_s],
        "backtesting_py_s": [round(t, 4) for t in theirs_s],
        "best_params": dict(ours_best),
        "backtesting_py_best_params": theirs_best,
        "same_best_params": dict(ours_best) == theirs_best,
    }


if __name__ == "__main__":
    main()
