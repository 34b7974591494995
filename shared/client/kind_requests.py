"""The requests of backtests and optimizations, built from the SDK's keyword options.

``backtest_request(target, ...)``: ``target`` is a rule strategy's name (``sma_crossover``) or a
stored model's (``strategy/SYMBOLS_TFS[_vN]``: a name containing ``/``). ``optimize_request``
takes the search space already as ``ParamRange`` messages: ``space_to_proto`` makes them from
``shared.optimize.ParamRange``s or from the shorthand below, typed by the strategy's parameters.

Space shorthand (``{"fast": (5, 50, 5), "ma": ["sma", "ema"], "k": "1.5:3.0:0.5"}``), per
parameter: ``(low, high)`` or ``(low, high, step)``; a list of choices; or the text form the
command line takes, ``LOW:HIGH[:STEP]`` or ``a,b,c``. Int parameters get step 1 unless given;
float parameters without a step are continuous (random, TPE, GP, CMA-ES; the grid sampler needs
a step). Bad shorthand raises ``ValueError`` saying what to write instead.

Only the fields an option sets are sent; the orchestrator fills in the documented defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shared.client.convert import fill_data, fill_placement
from shared.client.types import BacktestOptions, MarketOptions, OptimizeOptions, StrategyInfo
from shared.results import render_param
from shared.rpc.v1 import strategy_pb2 as spb

if TYPE_CHECKING:
    from shared.optimize import ParamRange, WalkForward

RangeSpec = str | tuple[float, float] | tuple[float, float, float] | Sequence[str]
"""One parameter's range in the shorthand."""
SpaceSpec = Mapping[str, RangeSpec] | Sequence["ParamRange"]
"""A search space: the shorthand by parameter name, or ``ParamRange``s."""

SAMPLERS = {
    "grid": spb.SAMPLER_GRID,
    "random": spb.SAMPLER_RANDOM,
    "tpe": spb.SAMPLER_TPE,
    "gp": spb.SAMPLER_GP,
    "cmaes": spb.SAMPLER_CMAES,
}
_TYPES = {
    "int": spb.PARAM_TYPE_INT,
    "float": spb.PARAM_TYPE_FLOAT,
    "categorical": spb.PARAM_TYPE_CATEGORICAL,
    "bool": spb.PARAM_TYPE_BOOL,
}


def is_model(target: str) -> bool:
    """A stored model's name has a ``/`` (``strategy/SYMBOLS_TFS``); a rule strategy's has none."""
    return "/" in target


def params_text(params: Mapping[str, object]) -> dict[str, str]:
    """Parameter values as the wire carries them: ``{"fast": 10}`` → ``{"fast": "10"}``."""
    return {str(name): render_param(value) for name, value in params.items()}


def settings_to_proto(options: MarketOptions) -> spb.BacktestSettings:
    """The backtest settings the options name; the rest stay unset (the server's defaults)."""
    msg = spb.BacktestSettings()
    for name in ("initial_cash", "size", "stop_loss_pct", "take_profit_pct"):
        value = options.get(name)
        if value is not None:
            setattr(msg, name, float(value))  # type: ignore[arg-type]
    for name in ("commission_pct", "commission_fixed", "slippage_bps"):
        value = options.get(name)
        if value:
            setattr(msg, name, float(value))  # type: ignore[arg-type]
    if "allow_short" in options:
        msg.allow_short = bool(options["allow_short"])
    sizing = options.get("sizing")
    if sizing is not None:
        modes = {"fraction": spb.SIZING_MODE_FRACTION, "units": spb.SIZING_MODE_UNITS}
        if sizing not in modes:
            raise ValueError(f"sizing is 'fraction' or 'units', not {sizing!r}")
        msg.sizing = modes[sizing]
    return msg


def _market(msg: spb.BacktestRequest | spb.OptimizeRequest, options: MarketOptions) -> None:
    msg.request_id = options.get("request_id", "")
    msg.settings.CopyFrom(settings_to_proto(options))
    fill_data(
        msg.data,
        data=options.get("data"),
        start=options.get("start", ""),
        end=options.get("end", ""),
        market_seed=options.get("market_seed"),
        bars=options.get("bars"),
    )
    fill_placement(
        msg.placement,
        require_gpu=options.get("require_gpu", False),
        node=options.get("node", ""),
    )


def backtest_request(
    target: str, symbols: Sequence[str], timeframes: Sequence[str], options: BacktestOptions
) -> spb.BacktestRequest:
    if not target:
        raise ValueError("name a rule strategy (e.g. sma_crossover) or a stored model to backtest")
    msg = spb.BacktestRequest(symbols=list(symbols), timeframes=list(timeframes))
    params = options.get("params") or {}
    if is_model(target):
        if params:
            raise ValueError(f"{target} is a stored model: it takes no strategy parameters")
        msg.model = target
    else:
        msg.strategy = target
        msg.params.update(params_text(params))
    _market(msg, options)
    return msg


def optimize_request(
    strategy: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    space: Sequence[spb.ParamRange],
    options: OptimizeOptions,
) -> spb.OptimizeRequest:
    msg = spb.OptimizeRequest(
        strategy=strategy,
        symbols=list(symbols),
        timeframes=list(timeframes),
        space=list(space),
        constraints=list(options.get("constraints", ())),
    )
    msg.fixed_params.update(params_text(options.get("fixed_params") or {}))
    if "objective" in options or "minimize" in options:
        msg.objective.stat = options.get("objective", "")
        msg.objective.minimize = bool(options.get("minimize", False))
    sampler = options.get("sampler")
    if sampler is not None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
        msg.sampler = SAMPLERS[sampler]
    trials = options.get("trials", 0)
    if trials is not None and "trials" in options:
        msg.trials = trials
    if options.get("timeout_s") is not None:
        msg.timeout_seconds = float(options["timeout_s"])
    if options.get("seed") is not None:
        msg.seed = int(options["seed"])
    msg.parallelism = int(options.get("parallelism", 0))
    walk = options.get("walk_forward")
    if walk is not None:
        msg.walk_forward.CopyFrom(walk_forward_to_proto(walk))
    _market(msg, options)
    return msg


def walk_forward_to_proto(w: WalkForward) -> spb.WalkForwardSpec:
    msg = spb.WalkForwardSpec(
        train_bars=w.train_bars, test_bars=w.test_bars, gap_bars=w.gap_bars, anchored=w.anchored
    )
    if w.trials_per_window is not None:
        msg.trials_per_window = w.trials_per_window
    return msg


# --- the search space ---------------------------------------------------------------------------


def needs_strategy(space: SpaceSpec) -> bool:
    """Whether turning ``space`` into messages needs the strategy's parameter types."""
    return isinstance(space, Mapping)


def space_to_proto(space: SpaceSpec, strategy: StrategyInfo | None) -> list[spb.ParamRange]:
    if not isinstance(space, Mapping):
        return [_range_message(r) for r in space]
    if strategy is None:
        raise ValueError("the space shorthand needs the strategy's parameters")
    if not space:
        raise ValueError(f"give at least one of {strategy.name}'s parameters to search")
    return [range_to_proto(name, spec, strategy) for name, spec in space.items()]


def _range_message(r: ParamRange) -> spb.ParamRange:
    msg = spb.ParamRange(name=r.name, type=_TYPES[r.type], log=r.log, choices=list(r.choices))
    if r.low is not None:
        msg.low = r.low
    if r.high is not None:
        msg.high = r.high
    if r.step is not None:
        msg.step = r.step
    return msg


def range_to_proto(name: str, spec: RangeSpec, strategy: StrategyInfo) -> spb.ParamRange:
    """One parameter's shorthand range, typed by ``strategy``'s parameter ``name``."""
    param = strategy.param(name)
    if param is None:
        known = ", ".join(p.name for p in strategy.params)
        raise ValueError(f"{strategy.name} has no parameter {name!r}; its parameters: {known}")
    if isinstance(spec, str):
        spec = _parse_text(name, spec, param.type)
    if param.type in ("categorical", "bool"):
        if isinstance(spec, tuple) and param.type == "categorical" and not param.choices:
            raise ValueError(f"{name} is categorical: list its choices, e.g. {name}=a,b")
        if isinstance(spec, tuple):
            raise ValueError(
                f"{name} is {param.type}: give choices"
                + (f" from {','.join(param.choices)}" if param.choices else " (true,false)")
                + f", e.g. {name}={','.join(param.choices[:2]) or 'true,false'}"
            )
        return spb.ParamRange(name=name, type=_TYPES[param.type], choices=[str(c) for c in spec])
    if not isinstance(spec, tuple):
        choices = [str(c) for c in spec]
        return spb.ParamRange(name=name, type=spb.PARAM_TYPE_CATEGORICAL, choices=choices)
    return _numeric(name, spec, param.type)


def _numeric(name: str, spec: tuple[float, ...], kind: str) -> spb.ParamRange:
    if len(spec) not in (2, 3):
        raise ValueError(f"{name}: give (low, high) or (low, high, step), not {spec!r}")
    values = [float(v) for v in spec]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}: the range's numbers must be finite, not {spec!r}")
    low, high = values[0], values[1]
    if low > high:
        raise ValueError(f"{name}: low {_num(low)} is above high {_num(high)}; swap them")
    step = values[2] if len(values) == 3 else None
    if step is not None and step <= 0:
        raise ValueError(f"{name}: the step must be > 0, not {_num(step)}")
    if kind == "int":
        if not all(v.is_integer() for v in values):
            raise ValueError(f"{name} is an int parameter: give whole numbers, not {spec!r}")
        step = step if step is not None else 1.0
    msg = spb.ParamRange(name=name, type=_TYPES[kind], low=low, high=high)
    if step is not None:
        msg.step = step
    return msg


def _parse_text(name: str, text: str, kind: str) -> RangeSpec:
    """``LOW:HIGH[:STEP]`` (numbers) or ``a,b,c`` (choices); a lone value is one choice."""
    text = text.strip()
    if ":" in text and kind in ("int", "float"):
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{name}={text}: write LOW:HIGH or LOW:HIGH:STEP, e.g. {name}=5:50:5")
        try:
            numbers = tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"{name}={text}: LOW, HIGH and STEP must be numbers, e.g. {name}=5:50:5"
            ) from None
        return numbers  # type: ignore[return-value]
    choices = [c.strip() for c in text.split(",")]
    if not all(choices):
        raise ValueError(f"{name}={text}: an empty choice; write a,b,c")
    return choices


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
