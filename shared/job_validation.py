"""Submit-time validation of backtest and optimization requests.

The orchestrator calls these before it queues a job and the trainer before it runs one, so a
request that cannot run is refused with the field to change (``SpecError`` /
``InvalidArgumentError``, both INVALID_ARGUMENT on the wire) instead of failing on a node.
"""

from __future__ import annotations

from shared.errors import InvalidArgumentError
from shared.job_requests import BacktestRequest, OptimizationRequest
from shared.optimize import parse_constraints, validate_space
from shared.pipeline.validation import validate_market_request
from shared.spec import DEFAULT_LIMITS, DataSource, JobLimits, SpecError
from shared.strategies import RuleStrategy, get_strategy, resolve_params
from shared.strategies.params import coerce

MAX_PARAMS = 64
"""Most parameters (given or searched) one request may name."""
MAX_TRIALS = 1_000_000
"""Most trials one optimization may ask for (each one is a backtest and an event)."""


def _one_series(symbols: tuple[str, ...], timeframes: tuple[str, ...], what: str) -> None:
    if len(symbols) != 1:
        raise SpecError(
            "symbols",
            f"{what} runs on one symbol, got {len(symbols)}: submit one job per symbol",
        )
    if len(timeframes) != 1:
        raise SpecError(
            "timeframes",
            f"{what} runs on one timeframe, got {len(timeframes)}: submit one job per timeframe",
        )


def _strategy(name: str) -> RuleStrategy:
    if not name:
        raise SpecError(
            "strategy",
            "name a rule strategy (trainwire strategies lists them, e.g. sma_crossover)",
        )
    return get_strategy(name)


def _bars_limit(request: BacktestRequest | OptimizationRequest, limits: JobLimits) -> None:
    total = request.data.bars * len(request.symbols) * len(request.timeframes)
    if request.data.source is DataSource.SYNTHETIC and total > limits.max_bars:
        raise SpecError(
            "data.bars",
            f"{total:,} synthetic bars is more than this service's limit of "
            f"{limits.max_bars:,}: ask for fewer",
        )


def validate_backtest(request: BacktestRequest, *, limits: JobLimits = DEFAULT_LIMITS) -> None:
    """Raise for the first problem that would stop this backtest from running."""
    if request.model and request.strategy:
        raise SpecError(
            "model", "give either a rule strategy (strategy) or a stored model (model), not both"
        )
    if request.model:
        if request.params:
            raise SpecError("params", "a model takes no parameters; its signals are its classes")
        if not request.symbols and not request.timeframes:
            return  # the orchestrator fills the model's own before queueing
        validate_market_request(request)
        _one_series(request.symbols, request.timeframes, "a model's backtest")
        _bars_limit(request, limits)
        return
    validate_market_request(request)
    _one_series(request.symbols, request.timeframes, "a rule strategy's backtest")
    _bars_limit(request, limits)
    if len(request.params) > MAX_PARAMS:
        raise SpecError("params", f"at most {MAX_PARAMS} parameters")
    resolve_params(_strategy(request.strategy), request.params)


def validate_optimization(
    request: OptimizationRequest, *, limits: JobLimits = DEFAULT_LIMITS
) -> None:
    """Raise for the first problem that would stop this optimization from running."""
    validate_market_request(request)
    _one_series(request.symbols, request.timeframes, "an optimization")
    _bars_limit(request, limits)
    strategy = _strategy(request.strategy)
    if len(request.space) + len(request.fixed_params) > MAX_PARAMS:
        raise SpecError("space", f"at most {MAX_PARAMS} parameters, searched and fixed together")
    searched = {r.name for r in request.space}
    known = {p.name for p in strategy.params}
    for name in request.fixed_params:
        if name in searched:
            raise InvalidArgumentError(
                f"{name!r} is both searched (space) and fixed: give it in one of them",
                field=f"fixed_params.{name}",
            )
        if name not in known:
            raise InvalidArgumentError(
                f"{request.strategy} has no parameter {name!r}; it has: {', '.join(sorted(known))}",
                field=f"fixed_params.{name}",
            )
        spec = next(p for p in strategy.params if p.name == name)
        try:
            coerce(spec, request.fixed_params[name])
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(exc.message, field=f"fixed_params.{name}") from None
    trials = request.optimizer.trials
    if trials is not None and trials > MAX_TRIALS:
        raise SpecError("trials", f"at most {MAX_TRIALS:,} trials a job; split the search")
    constraints = parse_constraints(request.constraints)
    validate_space(strategy, request.space, constraints, request.objective, request.optimizer)
