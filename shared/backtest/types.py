"""What a backtest takes and gives: settings (costs, sizing, stops), trades and the result.

Conventions every field follows: prices are in the bars' currency, cash in the same unit,
times in unix seconds (UTC, float64). ``Costs.commission_pct`` is a *fraction* of the traded
value (0.001 = 0.1 %); ``Trade.return_pct`` and every ``[%]`` stat are *percent* (2.5 = +2.5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from shared.errors import InvalidArgumentError

STAGES: tuple[str, ...] = ("signals", "trades")
"""Stages a backtest reports progress for, in order: computing the strategy's signals, then
simulating the trades candle by candle."""

EXIT_REASONS: tuple[str, ...] = ("signal", "stop_loss", "take_profit", "end")
"""Why a trade closed: the signal changed, a stop-loss or take-profit price was touched, or the
bars ran out (the open trade closes at the last close)."""


def _require(ok: bool, message: str, name: str) -> None:
    if not ok:
        raise InvalidArgumentError(message, field=f"settings.{name}")


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class Costs:
    """What each fill (an entry or an exit) costs."""

    commission_pct: float = 0.0
    """Fraction of the traded value (units x fill price) per fill: 0.001 = 0.1 %."""
    commission_fixed: float = 0.0
    """Cash per fill, on top of the percentage."""
    slippage_bps: float = 0.0
    """Adverse price move per fill in basis points: buys fill that much above the price, sells
    that much below (1 bp = 0.01 %)."""

    def __post_init__(self) -> None:
        _require(
            _finite(self.commission_pct) and 0.0 <= self.commission_pct < 0.1,
            f"commission_pct is a fraction of the traded value in [0, 0.1) (0.001 = 0.1 %), "
            f"not {self.commission_pct!r}",
            "costs.commission_pct",
        )
        _require(
            _finite(self.commission_fixed) and self.commission_fixed >= 0.0,
            f"commission_fixed is cash per fill, >= 0, not {self.commission_fixed!r}",
            "costs.commission_fixed",
        )
        _require(
            _finite(self.slippage_bps) and 0.0 <= self.slippage_bps < 10_000.0,
            f"slippage_bps is basis points per fill in [0, 10000), not {self.slippage_bps!r}",
            "costs.slippage_bps",
        )


@dataclass(frozen=True, kw_only=True)
class Sizing:
    """How many units an entry buys or sells."""

    mode: Literal["fraction", "units"] = "fraction"
    """``fraction``: ``value`` of the equity at the fill, costs included; ``units``: ``value``
    units every trade, whatever the equity (no margin is modelled: equity may go negative)."""
    value: float = 1.0
    """In (0, 1] for ``fraction``; > 0 for ``units``."""
    whole_units: bool = False
    """Round fraction-sized entries down to whole units (shares), as backtesting.py does; an
    entry too small for one unit is skipped."""

    def __post_init__(self) -> None:
        _require(
            self.mode in ("fraction", "units"),
            f"sizing.mode is 'fraction' or 'units', not {self.mode!r}",
            "sizing.mode",
        )
        if self.mode == "fraction":
            ok, what = _finite(self.value) and 0.0 < self.value <= 1.0, "in (0, 1]"
        else:
            ok, what = _finite(self.value) and self.value > 0.0, "> 0"
        _require(
            ok,
            f"sizing.value for mode {self.mode!r} must be {what}, not {self.value!r}",
            "sizing.value",
        )


@dataclass(frozen=True, kw_only=True)
class BacktestSettings:
    """Everything about a backtest but the bars and the signals."""

    initial_cash: float = 10_000.0
    costs: Costs = field(default_factory=Costs)
    sizing: Sizing = field(default_factory=Sizing)
    allow_short: bool = True
    """False: a short signal (-1) means flat."""
    stop_loss_pct: float | None = None
    """Close a trade once the price moves this *fraction* against its entry price (0.02 = 2 %),
    checked intrabar against the low (long) or high (short)."""
    take_profit_pct: float | None = None
    """Close a trade once the price moves this fraction in its favour (0.05 = 5 %)."""

    def __post_init__(self) -> None:
        _require(
            _finite(self.initial_cash) and self.initial_cash > 0.0,
            f"initial_cash must be > 0, not {self.initial_cash!r}",
            "initial_cash",
        )
        # A dict in place of Costs or Sizing would fail later, far from the cause.
        _require(isinstance(self.costs, Costs), "costs must be a Costs", "costs")
        _require(isinstance(self.sizing, Sizing), "sizing must be a Sizing", "sizing")
        _require(
            isinstance(self.allow_short, bool),
            f"allow_short is true or false, not {self.allow_short!r}",
            "allow_short",
        )
        for name in ("stop_loss_pct", "take_profit_pct"):
            value = getattr(self, name)
            if value is None:
                continue
            limit = 1.0 if name == "stop_loss_pct" else 100.0
            _require(
                _finite(value) and 0.0 < value < limit,
                f"{name} is a fraction of the entry price in (0, {limit:g}) (0.02 = 2 %), "
                f"or unset; not {value!r}",
                name,
            )


@dataclass(frozen=True)
class Trade:
    """One closed round trip."""

    entry_bar: int
    """Index of the bar whose open (or, for the last trade, whose prices) filled the entry."""
    exit_bar: int
    entry_time: float
    """Unix seconds of the entry bar's timestamp."""
    exit_time: float
    entry_price: float
    """The fill price, slippage included."""
    exit_price: float
    size: float
    """Signed units: positive long, negative short."""
    pnl: float
    """Cash: size x (exit - entry) minus both fills' commissions."""
    return_pct: float
    """Percent of the entry value: sign x (exit/entry - 1) minus commissions/(|size| x entry),
    times 100 (backtesting.py's trade return)."""
    duration_s: float
    exit_reason: str
    """One of ``EXIT_REASONS``."""
    commission: float = 0.0
    """Cash paid in commissions on both fills."""


FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BacktestResult:
    """Trades, the equity curve and the stats of one backtest."""

    trades: tuple[Trade, ...]
    equity: FloatArray
    """Cash plus the open position marked at each bar's close; one value per bar."""
    times: FloatArray
    """Each bar's timestamp in unix seconds."""
    stats: dict[str, float]
    """Keys: ``STAT_NAMES`` (shared.backtest.stats)."""
    candles: int


class BacktestReporter(Protocol):
    """Receives candle progress: ``stage`` is one of ``STAGES``; ``done`` of ``total`` candles."""

    def candles(self, stage: str, done: int, total: int) -> None: ...
