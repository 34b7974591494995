"""Real market files for tests: the OHLCV files the ``backtesting`` package ships.

``backtesting/test/`` holds GOOG.csv (daily, 2004-08-19 … 2013-03-01, 2,148 bars), EURUSD.csv
(hourly, 2017-04-19 09:00 … 2018-02-07 15:00, 5,000 bars) and BTCUSD.csv (monthly). Both of
the first two are what ``DataFrame.to_csv`` writes: an unnamed first column of naive
timestamps, then Open, High, Low, Close, Volume. Tests read them as files; nothing of the
library itself is imported beyond locating its folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

REAL_FILES = ("GOOG.csv", "EURUSD.csv", "BTCUSD.csv")


def backtesting_test_dir() -> Path:
    """The folder holding GOOG.csv, EURUSD.csv and BTCUSD.csv (skips without the package)."""
    backtesting = pytest.importorskip("backtesting")
    folder = Path(backtesting.__file__).resolve().parent / "test"
    missing = [name for name in REAL_FILES if not (folder / name).is_file()]
    if missing:
        pytest.fail(f"the backtesting package has no {', '.join(missing)} in {folder}")
    return folder


def real_file(name: str) -> Path:
    """One of ``REAL_FILES`` by name, e.g. ``real_file("EURUSD.csv")``."""
    return backtesting_test_dir() / name


def market_dir(root: Path, files: Mapping[str, str] | None = None, folder: str = "market") -> Path:
    """``root/folder`` holding copies of real files under the names a test needs.

    ``files`` maps the name to write to the real file's name, e.g. ``{"EURUSD_1h.csv":
    "EURUSD.csv"}``; by default GOOG.csv and EURUSD.csv under their own names. Returns the
    folder (its parent ``root`` is the trainer's data directory, ``folder`` the ``data.path``).
    """
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    wanted = files if files is not None else {"GOOG.csv": "GOOG.csv", "EURUSD.csv": "EURUSD.csv"}
    for name, original in wanted.items():
        shutil.copyfile(real_file(original), target / name)
    return target
