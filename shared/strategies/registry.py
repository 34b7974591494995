"""The rule strategies by name."""

from __future__ import annotations

from shared.errors import InvalidArgumentError
from shared.strategies.bollinger_breakout import BollingerBreakout
from shared.strategies.liquidity_sweep import LiquiditySweep
from shared.strategies.params import RuleStrategy
from shared.strategies.rsi_reversion import RsiReversion
from shared.strategies.trend import SmaCrossover

STRATEGIES: dict[str, RuleStrategy] = {
    s.name: s for s in (SmaCrossover(), RsiReversion(), BollingerBreakout(), LiquiditySweep())
}
"""Every rule strategy, by name."""


def list_strategies() -> tuple[RuleStrategy, ...]:
    """The rule strategies, in a stable order (by name)."""
    return tuple(STRATEGIES[name] for name in sorted(STRATEGIES))


def get_strategy(name: str) -> RuleStrategy:
    """The strategy called ``name``; an unknown name raises ``InvalidArgumentError`` (field
    ``strategy``) listing the known ones."""
    strategy = STRATEGIES.get(name)
    if strategy is None:
        known = ", ".join(sorted(STRATEGIES))
        raise InvalidArgumentError(f"unknown strategy {name!r}; known: {known}", field="strategy")
    return strategy
