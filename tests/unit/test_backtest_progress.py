"""Backtest progress and cancellation: the throttle's bounds, what a reporter sees, and a cancel
taking effect within one chunk of candles."""

from __future__ import annotations

import numpy as np
import pytest

from shared.backtest import run_backtest, run_strategy
from shared.backtest.engine import simulate_bars
from shared.backtest.progress import ReportThrottle, ThrottledReporter
from shared.backtest.types import BacktestSettings
from shared.cancellation import CancellationToken, CancelledError
from shared.errors import InvalidArgumentError
from shared.pipeline.synthetic import synthetic_bars
from shared.strategies import get_strategy


class FakeClock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, int, int]] = []

    def candles(self, stage: str, done: int, total: int) -> None:
        self.reports.append((stage, done, total))


def test_throttle_sends_at_most_max_reports_however_slow_the_work() -> None:
    clock = FakeClock(step=10.0)  # every candle takes ages: time never holds a report back
    throttle = ReportThrottle(clock=clock, max_reports=100)
    sent = [done for done in range(1, 10_001) if throttle.due("trades", done, 10_000)]
    assert 99 <= len(sent) <= 101
    assert sent[-1] == 10_000
    assert min(np.diff(sent)) >= 100  # at least 1 % of the candles apart


def test_throttle_keeps_reports_200_ms_apart_except_the_final_one() -> None:
    clock = FakeClock(step=0.001)  # 1 ms per call: candles race by
    throttle = ReportThrottle(clock=clock, min_interval_s=0.2, max_reports=100)
    times = []
    for done in range(1, 100_001, 10):
        if throttle.due("trades", done, 100_000):
            times.append(clock.now)
    assert throttle.due("trades", 100_000, 100_000)  # the final one always goes out
    assert len(times) >= 2
    assert min(np.diff(times)) >= 0.2 - 1e-9


def test_a_fast_stage_reports_once_at_its_end() -> None:
    throttle = ReportThrottle(clock=FakeClock(step=0.0001))
    sent = [d for d in range(0, 10_001, 100) if throttle.due("trades", d, 10_000)]
    assert sent == [10_000]


def fast(recorder: Recorder) -> ThrottledReporter:
    """A reporter whose clock moves 0.1 ms per look: a backtest over in a few ms."""
    return ThrottledReporter(recorder, ReportThrottle(clock=FakeClock(step=0.0001)))


def test_run_backtest_of_10k_fast_candles_reports_once() -> None:
    bars = synthetic_bars("X", "1h", 10_000, seed=1)
    signals = np.sign(np.sin(np.arange(10_000) / 50)).astype(np.int8)
    recorder = Recorder()
    run_backtest(bars, signals, reporter=fast(recorder))
    assert recorder.reports == [("trades", 10_000, 10_000)]


def test_any_reporter_gets_the_final_report_of_each_stage() -> None:
    bars = synthetic_bars("X", "1h", 2_000, seed=1)
    recorder = Recorder()
    run_strategy(bars, "rsi_reversion", {}, reporter=recorder)
    assert recorder.reports[0] == ("signals", 0, 2_000)
    assert ("signals", 2_000, 2_000) in recorder.reports
    assert recorder.reports[-1] == ("trades", 2_000, 2_000)
    assert len(recorder.reports) <= 103


def test_run_strategy_reports_both_stages() -> None:
    bars = synthetic_bars("X", "1h", 10_000, seed=1)
    recorder = Recorder()
    run_strategy(bars, "sma_crossover", {}, reporter=fast(recorder))
    assert recorder.reports == [
        ("signals", 0, 10_000),
        ("signals", 10_000, 10_000),
        ("trades", 10_000, 10_000),
    ]


def test_slow_reporting_covers_the_run_in_about_100_steps() -> None:
    bars = synthetic_bars("X", "1h", 50_000, seed=2)
    signals = np.sign(np.sin(np.arange(50_000) / 30)).astype(np.int8)
    recorder = Recorder()
    reporter = ThrottledReporter(recorder, ReportThrottle(clock=FakeClock(step=1.0)))
    simulate_bars(bars, signals, BacktestSettings(), reporter, None)
    done = [d for _, d, _ in recorder.reports]
    assert 90 <= len(done) <= 101
    assert done == sorted(done) and done[-1] == 50_000


class CountingToken(CancellationToken):
    def __init__(self, cancel_at: int = 0) -> None:
        super().__init__()
        self.checks = 0
        self.cancel_at = cancel_at

    def raise_if_cancelled(self) -> None:
        self.checks += 1
        if self.checks == self.cancel_at:
            self.cancel("stop")
        super().raise_if_cancelled()


def test_cancellation_is_checked_every_percent_of_the_candles() -> None:
    bars = synthetic_bars("X", "1h", 10_000, seed=3)
    token = CountingToken()
    run_backtest(bars, np.ones(10_000, dtype=np.int8), cancel=token)
    assert token.checks >= 100


def test_cancel_mid_run_raises_within_a_chunk() -> None:
    n = 20_000
    bars = synthetic_bars("X", "1h", n, seed=4)
    token = CancellationToken()
    recorder = Recorder()

    class CancelHalfway:
        def candles(self, stage: str, done: int, total: int) -> None:
            recorder.candles(stage, done, total)
            if done >= total // 2:
                token.cancel("user asked")

    reporter = ThrottledReporter(CancelHalfway(), ReportThrottle(clock=FakeClock(step=1.0)))
    with pytest.raises(CancelledError) as err:
        simulate_bars(bars, np.ones(n, dtype=np.int8), BacktestSettings(), reporter, token)
    assert err.value.reason == "user asked"
    last = recorder.reports[-1][1]
    assert n // 2 <= last <= n // 2 + n // 100  # stopped at the next chunk boundary


def test_cancel_before_the_signals_stops_run_strategy() -> None:
    bars = synthetic_bars("X", "1h", 1_000, seed=5)
    token = CancellationToken()
    token.cancel("gone")
    recorder = Recorder()
    with pytest.raises(CancelledError):
        run_strategy(bars, "sma_crossover", {}, reporter=recorder, cancel=token)
    assert recorder.reports == []


def test_run_strategy_takes_an_object_and_checks_its_params() -> None:
    bars = synthetic_bars("X", "1h", 500, seed=6)
    by_object = run_strategy(bars, get_strategy("bollinger_breakout"), {"period": "30"})
    by_name = run_strategy(bars, "bollinger_breakout", {"period": 30})
    assert by_object.stats == pytest.approx(by_name.stats, nan_ok=True)
    with pytest.raises(InvalidArgumentError) as err:
        run_strategy(bars, "bollinger_breakout", {"periods": 30})
    assert err.value.field == "params.periods"
