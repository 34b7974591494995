"""Turning the backtest and optimize verbs' flags into SDK options, or saying what to change.

``FlagError`` is a flag value that cannot work (``--param fast``, ``--walk-forward 500``,
``--commission -1``): the command exits 2 (``ExitCode.BAD_CONFIGURATION``) with its message,
before anything is sent. What only the server can judge (a value out of a strategy's range,
an unknown stat) comes back as a rejected request (exit 5) naming the field.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.client import data

if TYPE_CHECKING:
    from shared.optimize import WalkForward


class FlagError(ValueError):
    """A flag's value cannot work; the message names the flag and what to write."""


def key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    """``["fast=10", "ma=ema"]`` → ``{"fast": "10", "ma": "ema"}``; each name once."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise FlagError(f"{flag} {item!r}: write NAME=VALUE, e.g. {flag} fast=10")
        if name in out:
            raise FlagError(f"{flag} {name} is given twice ({out[name]} and {value}); keep one")
        out[name] = value
    return out


def _number(flag: str, value: float | None, *, low: float, high: float, unit: str) -> float:
    assert value is not None
    if not math.isfinite(value) or not low <= value < high:
        raise FlagError(f"{flag} {value:g}: {unit}")
    return value


def market_options(args: argparse.Namespace) -> dict[str, Any]:
    """Data source, range and backtest settings from the shared flags of both verbs."""
    options: dict[str, Any] = {}
    window = {"start": args.start, "end": args.end}
    if args.data is not None or args.dataset:
        if args.bars:
            raise FlagError("--bars sets the synthetic market's length; it needs --synthetic")
        if args.market_seed is not None:
            raise FlagError("--market-seed seeds the synthetic market; it needs --synthetic")
        window["timezone"] = args.timezone
        source = args.data if args.data is not None else args.dataset
        build = data.directory if args.data is not None else data.dataset
        options["data"] = build(source, **window)
    elif args.synthetic:
        if args.timezone:
            raise FlagError("--timezone is for the naive timestamps of --data or --dataset files")
        default = data.synthetic()
        seed = default.seed if args.market_seed is None else args.market_seed
        options["data"] = data.synthetic(bars=args.bars or default.bars, seed=seed, **window)
    else:
        if args.timezone:
            raise FlagError("--timezone is for the naive timestamps of --data or --dataset files")
        options.update({k: v for k, v in window.items() if v})
        if args.bars:
            options["bars"] = args.bars
        if args.market_seed is not None:
            options["market_seed"] = args.market_seed
    options.update(settings_options(args))
    if args.node:
        options["node"] = args.node
    if args.request_id:
        options["request_id"] = args.request_id
    return options


def settings_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--commission`` is percent (0.1 = 0.1 %), sent as a fraction; the rest as given."""
    out: dict[str, Any] = {}
    if args.commission is not None:
        pct = _number(
            "--commission",
            args.commission,
            low=0,
            high=10,
            unit="percent of the traded value per fill, in [0, 10), e.g. 0.1",
        )
        out["commission_pct"] = pct / 100.0
    if args.commission_fixed is not None:
        out["commission_fixed"] = _number(
            "--commission-fixed",
            args.commission_fixed,
            low=0,
            high=math.inf,
            unit="cash per fill, >= 0",
        )
    if args.slippage is not None:
        out["slippage_bps"] = _number(
            "--slippage",
            args.slippage,
            low=0,
            high=10_000,
            unit="basis points per fill, in [0, 10000), e.g. 2",
        )
    if args.cash is not None:
        if not math.isfinite(args.cash) or args.cash <= 0:
            raise FlagError(f"--cash {args.cash:g}: the starting equity must be > 0, e.g. 10000")
        out["initial_cash"] = args.cash
    if args.size is not None:
        out["size"] = args.size
    if args.units:
        out["sizing"] = "units"
        if args.size is None:
            raise FlagError("--units needs --size N: the units every trade buys or sells")
    elif args.size is not None and not 0 < args.size <= 1:
        raise FlagError(
            f"--size {args.size:g}: the fraction of equity per trade, in (0, 1]; "
            "with --units, a number of units"
        )
    if args.no_short:
        out["allow_short"] = False
    for flag, name, key in (
        ("--stop-loss", "stop_loss", "stop_loss_pct"),
        ("--take-profit", "take_profit", "take_profit_pct"),
    ):
        value = getattr(args, name)
        if value is not None:
            high = 1.0 if name == "stop_loss" else 100.0
            if not math.isfinite(value) or not 0 < value < high:
                raise FlagError(
                    f"{flag} {value:g}: a fraction of the entry price in (0, {high:g}), "
                    f"e.g. {flag} 0.05 for 5 %"
                )
            out[key] = value
    return out


def walk_forward(text: str) -> WalkForward:
    """``TRAIN:TEST[:GAP][:anchored]`` in bars, e.g. ``500:250``, ``500:250:5:anchored``."""
    from shared.optimize import WalkForward

    parts = [p.strip() for p in text.split(":")]
    anchored = bool(parts) and parts[-1].lower() == "anchored"
    if anchored:
        parts = parts[:-1]
    hint = "write TRAIN:TEST[:GAP][:anchored] in bars, e.g. --walk-forward 500:250:5"
    if len(parts) not in (2, 3):
        raise FlagError(f"--walk-forward {text}: {hint}")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise FlagError(f"--walk-forward {text}: whole numbers of bars; {hint}") from None
    train, test = numbers[0], numbers[1]
    gap = numbers[2] if len(numbers) == 3 else 0
    if train <= 0 or test <= 0 or gap < 0:
        raise FlagError(f"--walk-forward {text}: TRAIN and TEST > 0, GAP >= 0; {hint}")
    return WalkForward(train_bars=train, test_bars=test, gap_bars=gap, anchored=anchored)
