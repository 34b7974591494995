"""Rule-based trading strategies: typed parameters and ``signals(bars, params)``.

Each strategy turns OHLCV bars into one signal per bar (+1 long, -1 short, 0 flat: the
position wanted after that bar's close) from ``shared.pipeline.indicators``. ``resolve_params``
checks a request's parameters against the strategy's ``ParamSpec``s; ``get_strategy`` finds one
by name. A trained model is a strategy too: ``signals_from_classes`` maps its predicted classes.
"""

from shared.strategies.model_signals import signals_from_classes
from shared.strategies.params import ParamSpec, RuleStrategy, resolve_params
from shared.strategies.positions import hold_positions, warm_up
from shared.strategies.registry import STRATEGIES, get_strategy, list_strategies

__all__ = [
    "STRATEGIES",
    "ParamSpec",
    "RuleStrategy",
    "get_strategy",
    "hold_positions",
    "list_strategies",
    "resolve_params",
    "signals_from_classes",
    "warm_up",
]
