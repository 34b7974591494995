"""How fast a backtest is, against backtesting.py on the same bars, and what progress costs.

One run, one series, one strategy and one set of costs for every case:

- Data: ``--candles`` synthetic hourly bars from ``shared.pipeline.synthetic`` (seed 1; a long
  series so timings are not dominated by fixed costs; 100k with ``--quick``, 500k by default).
- Strategy: SMA(10/20) crossover, always in the market (long while fast > slow, else short),
  0.1 % commission per fill, whole units (backtesting.py's default sizing).
- ``ours``: ``run_strategy`` (signals, the compiled simulation and the stats) with no reporter;
  ``ours_progress``: the same with a reporter doing real work on every report it gets (an
  event dict serialised to JSON and kept); ``simulation``: ``run_backtest`` on precomputed
  signals (the loop and the stats only).
- ``backtesting_py``: ``Backtest(...).run()`` of backtesting.py with an equivalent Strategy
  (indicators by pandas rolling means, ``exclusive_orders=True``, ``trade_on_close=False``).

``ours``, ``simulation`` and ``backtesting_py`` are measured interleaved (order reversed every
round) after one untimed warm-up run each; backtesting.py gets fewer repeats (it is ~100x
slower). The JIT compile is measured apart: ``jit_compile_s`` is ``warm_up()`` in a fresh
process with an empty numba cache, ``jit_cached_s`` the same with the cache it left.
Progress on vs off is a second phase of its own: 200 (quick) or 400 pairs of ``ours`` and
``ours_progress`` whose order alternates, in wall and in process CPU seconds (the latter leaves
out waiting for a core on a busy machine). A run this short (tens of ms) reports each stage
only at its end, so what progress costs is the throttle's check at every chunk.

Figures: medians of wall seconds, and candles per second; ``ratio_vs_backtesting_py`` =
median(backtesting.py) / median(ours) (goal >= 10); ``progress_overhead_ratio`` =
median(on) / median(off) (goal <= 1.01); ``*_ci95`` are bootstrap 95 % intervals (resampling
each side's repeats, or the pairs for the progress ratios). ``same_trades``: on these bars,
with both sides made comparable as tests/integration/test_backtest_reference.py does (no
signal before backtesting.py's first ``next()``, flat from the second-to-last bar), our entry
and exit bars and sizes equal backtesting.py's.

    .venv/bin/python benchmarks/backtest.py [--quick] [--repeats N] [--candles N]

``--quick`` finishes in well under a minute on a 2-core machine; the default run in a few.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar, on stderr

from benchmarks.common import base_parser, median, report, timed
from shared.backtest import (
    BacktestResult,
    BacktestSettings,
    Costs,
    Sizing,
    run_backtest,
    run_strategy,
    warm_up,
)
from shared.pipeline.synthetic import synthetic_bars
from shared.strategies import get_strategy, resolve_params

FAST, SLOW, COMMISSION = 10, 20, 0.001
SETTINGS = BacktestSettings(
    initial_cash=1_000_000.0,
    costs=Costs(commission_pct=COMMISSION),
    sizing=Sizing(whole_units=True),
)
PARAMS = {"fast": FAST, "slow": SLOW, "ma": "sma"}


class WorkingReporter:
    """A reporter that does what a trainer's does with each report: build an event, encode it."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def candles(self, stage: str, done: int, total: int) -> None:
        event = {"stage": stage, "done": done, "total": total, "pct": 100.0 * done / total}
        self.events.append(json.dumps(event))


def backtesting_frame(bars: pd.DataFrame) -> pd.DataFrame:
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


def backtesting_run(frame: pd.DataFrame, flat_from: int | None = None) -> Any:
    """backtesting.py's run of the always-in SMA crossover; ``flat_from``: close the position at
    that bar's close and trade no more (what makes the last trade comparable)."""
    from backtesting import Backtest, Strategy  # type: ignore[import-untyped]

    def rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
        return np.asarray(pd.Series(values).rolling(period).mean(), dtype=np.float64)

    class AlwaysInSmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(rolling_mean, self.data.Close, FAST)
            self.slow = self.I(rolling_mean, self.data.Close, SLOW)

        def next(self) -> None:
            if flat_from is not None and len(self.data) > flat_from:
                self.position.close()
                return
            want = 1 if self.fast[-1] > self.slow[-1] else -1
            held = 0 if not self.position else (1 if self.position.is_long else -1)
            if want != held:
                (self.buy if want == 1 else self.sell)()

    test = Backtest(
        frame,
        AlwaysInSmaCross,
        cash=SETTINGS.initial_cash,
        commission=COMMISSION,
        exclusive_orders=True,
        trade_on_close=False,
        finalize_trades=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return test.run()


def same_trades(bars: pd.DataFrame, frame: pd.DataFrame) -> tuple[bool, int]:
    strategy = get_strategy("sma_crossover")
    signals = strategy.signals(bars, resolve_params(strategy, PARAMS))
    signals[:SLOW] = 0
    signals[-2:] = 0
    ours = run_backtest(bars, signals, SETTINGS)
    theirs = backtesting_run(frame, flat_from=len(bars) - 2)["_trades"]
    mine = [(t.entry_bar, t.exit_bar, int(t.size)) for t in ours.trades]
    reference = list(
        zip(
            theirs["EntryBar"].tolist(),
            theirs["ExitBar"].tolist(),
            theirs["Size"].tolist(),
            strict=True,
        )
    )
    return mine == reference, len(mine)


def jit_seconds() -> tuple[float, float]:
    """``warm_up()`` in a fresh process: with an empty numba cache, then with its result."""
    code = (
        "import time; from shared.backtest import warm_up; t = time.perf_counter(); warm_up(); "
        "print(time.perf_counter() - t)"
    )
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [
            subprocess.run(
                [sys.executable, "-c", code],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            for _ in range(2)
        ]
    return float(runs[0].stdout.split()[-1]), float(runs[1].stdout.split()[-1])


def bootstrap(
    a: list[float], b: list[float], paired: bool, rounds: int = 2000
) -> tuple[float, float]:
    """95 % interval of median(a)/median(b): resampling pairs, or each side on its own."""
    rng = random.Random(0)
    ratios = []
    for _ in range(rounds):
        if paired:
            idx = rng.choices(range(len(a)), k=len(a))
            ra, rb = [a[i] for i in idx], [b[i] for i in idx]
        else:
            ra, rb = rng.choices(a, k=len(a)), rng.choices(b, k=len(b))
        ratios.append(median(ra) / median(rb))
    ratios.sort()
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def measure(
    cases: dict[str, Callable[[], object]], repeats: dict[str, int]
) -> dict[str, list[float]]:
    """Alternate the cases (order reversed every round); a case runs until its repeats are done."""
    for fn in cases.values():
        fn()  # warm-up, untimed
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(max(repeats.values())):
        for name in names if i % 2 == 0 else reversed(names):
            if len(samples[name]) < repeats[name]:
                samples[name].append(timed(cases[name]))
    return samples


def progress_pairs(
    off: Callable[[], object], on: Callable[[], object], pairs: int
) -> tuple[tuple[list[float], list[float]], tuple[list[float], list[float]]]:
    """(wall, cpu) seconds of (off, on) over ``pairs`` pairs whose order alternates."""
    off(), on()  # warm-up, untimed
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for i in range(pairs):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            fn = on if side else off
            c, w = time.process_time(), time.perf_counter()
            fn()
            wall[side].append(time.perf_counter() - w)
            cpu[side].append(time.process_time() - c)
    return wall, cpu


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "backtest")
    parser.add_argument("--candles", type=int, default=None, help="bars (500k; quick 100k)")
    args = parser.parse_args()
    quick: bool = args.quick
    candles: int = args.candles or (100_000 if quick else 500_000)
    repeats: int = args.repeats or (21 if quick else 101)
    reference_repeats = 3 if quick else 7
    progress_pairs_n = 200 if quick else 400

    jit_compile_s, jit_cached_s = jit_seconds()
    t = time.perf_counter()
    warm_up()
    jit_here_s = time.perf_counter() - t
    bars = synthetic_bars("BENCH", "1h", candles, seed=1)
    frame = backtesting_frame(bars)
    strategy = get_strategy("sma_crossover")
    signals = strategy.signals(bars, resolve_params(strategy, PARAMS))
    reporter = WorkingReporter()
    last: dict[str, BacktestResult] = {}

    def ours() -> None:
        last["ours"] = run_strategy(bars, "sma_crossover", PARAMS, SETTINGS)

    def ours_progress() -> None:
        run_strategy(bars, "sma_crossover", PARAMS, SETTINGS, reporter=reporter)

    samples = measure(
        {
            "ours": ours,
            "simulation": lambda: run_backtest(bars, signals, SETTINGS),
            "backtesting_py": lambda: backtesting_run(frame),
        },
        {"ours": repeats, "simulation": repeats, "backtesting_py": reference_repeats},
    )
    wall, cpu = progress_pairs(ours, ours_progress, progress_pairs_n)
    same, trades = same_trades(bars, frame)
    ours_s = samples["ours"]
    bare_s, progress_s = wall
    bare_c, progress_c = cpu
    reference_s, simulation_s = samples["backtesting_py"], samples["simulation"]
    reports_per_run = len(reporter.events) / (progress_pairs_n + 1)
    lo, hi = bootstrap(reference_s, ours_s, paired=False)
    plo, phi = bootstrap(progress_s, bare_s, paired=True)
    clo, chi = bootstrap(progress_c, bare_c, paired=True)
    report(
        "backtest",
        {
            "quick": quick,
            "data": f"synthetic_bars('BENCH', '1h', {candles}, seed=1)",
            "candles": candles,
            "strategy": "sma_crossover fast=10 slow=20, always in, 0.1 % commission, whole units",
            "candles_per_s": candles / median(ours_s),
            "simulation_candles_per_s": candles / median(simulation_s),
            "backtesting_py_candles_per_s": candles / median(reference_s),
            "ratio_vs_backtesting_py": median(reference_s) / median(ours_s),
            "ratio_vs_backtesting_py_ci95": [round(lo, 2), round(hi, 2)],
            "progress_overhead_ratio": median(progress_s) / median(bare_s),
            "progress_overhead_ratio_ci95": [round(plo, 4), round(phi, 4)],
            "progress_overhead_cpu_ratio": median(progress_c) / median(bare_c),
            "progress_overhead_cpu_ratio_ci95": [round(clo, 4), round(chi, 4)],
            "progress_pair_ratio_median": median(
                [a / b for a, b in zip(progress_s, bare_s, strict=True)]
            ),
            "progress_pairs": progress_pairs_n,
            "progress_reports_per_run": reports_per_run,
            "same_trades": same,
            "compared_trades": trades,
            "trades_per_run": len(last["ours"].trades),
            "jit_compile_s": round(jit_compile_s, 3),
            "jit_cached_s": round(jit_cached_s, 3),
            "jit_warm_up_this_process_s": round(jit_here_s, 3),
            "ours_median_s": median(ours_s),
            "progress_off_median_s": median(bare_s),
            "progress_on_median_s": median(progress_s),
            "simulation_median_s": median(simulation_s),
            "backtesting_py_median_s": median(reference_s),
            "backtesting_py_s": [round(v, 3) for v in reference_s],
            "repeats": repeats,
            "backtesting_py_repeats": reference_repeats,
            **_optimize_figures(quick),
        },
    )


def _optimize_figures(quick: bool) -> dict[str, Any]:
    """Optimization trials/s against backtesting.py's ``Backtest.optimize`` on the same grid
    (``benchmarks/optimize.py``), under keys of their own."""
    from benchmarks.optimize import measure_optimize

    figures = measure_optimize(quick=quick)
    return {
        "optimize_trials_per_s": figures["optimize_trials_per_s"],
        "optimize_ratio_vs_backtesting_py": figures["optimize_ratio_vs_backtesting_py"],
        "optimize_ratio_ci95": figures["ratio_ci95"],
        "optimize_grid_size": figures["grid_size"],
        "optimize_same_best_params": figures["same_best_params"],
        "optimize_data": figures["data"],
    }


if __name__ == "__main__":
    main()
