"""Timeframe strings (``5m``, ``1h``, ``4h``, ``1d``, ``1w``) as durations."""

from __future__ import annotations

import re

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

_TIMEFRAME_RE = re.compile(r"([1-9][0-9]*)(m|h|d|w)")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """``5m`` → 5 minutes, ``1h`` → 1 hour, ``1d`` → 1 day, ``1w`` → 7 days."""
    match = _TIMEFRAME_RE.fullmatch(timeframe) if timeframe.isascii() else None
    if match is None:
        raise ValueError(f"{timeframe!r} is not a timeframe: use e.g. 5m, 1h, 4h, 1d, 1w")
    return pd.Timedelta(minutes=int(match.group(1)) * _UNIT_MINUTES[match.group(2)])


def finest_timeframe(timeframes: tuple[str, ...]) -> str:
    """The timeframe with the shortest bar (the synthetic generation timeframe)."""
    return min(timeframes, key=timeframe_delta)
