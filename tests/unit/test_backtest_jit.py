"""The compiled loops: warm_up() compiles them, and a missing cache location is no failure."""

from __future__ import annotations

import pytest
from numba.core import caching

from shared.backtest import warm_up
from shared.strategies import warm_up as warm_up_strategies
from shared.strategies.compiled import compiled


def test_warm_up_compiles_the_loops() -> None:
    warm_up()
    warm_up_strategies()


def test_no_writable_cache_location_compiles_without_a_cache(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])

    def twice(x: float) -> float:
        return 2.0 * x

    fast = compiled(twice)
    assert fast(21.0) == 42.0
    assert "without an on-disk cache" in caplog.text
