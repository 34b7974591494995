"""Request validation for the pipeline: ``shared.spec.validate`` plus what only it knows.

``validate_request`` is what the orchestrator calls before it queues a job and what
``run_training`` calls before it starts one: the spec rules with the pipeline's indicator
catalogue, indicator parameters, date bounds, the synthetic market's calendar and timeframe
compatibility, and the job-size limits, all reported as ``SpecError`` with the proto field path
to fix.
"""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.indicators import INDICATOR_OUTPUTS, ParamError, resolve_params
from shared.pipeline.market import SYNTHETIC_START, finest_timeframe, parse_bound, timeframe_delta
from shared.spec import (
    DEFAULT_LIMITS,
    DataSource,
    JobLimits,
    MarketRequest,
    SpecError,
    TrainingRequest,
    check_limits,
    validate,
    validate_market,
)

_LAST_TIME = pd.Timestamp.max.floor("D")
"""The last instant a bar index can hold (nanosecond timestamps end in April 2262)."""


def validate_request(
    request: TrainingRequest, *, limits: JobLimits | None = DEFAULT_LIMITS
) -> None:
    """Raise ``SpecError`` for the first problem that would stop this request from training.

    ``limits`` bounds the job's size (``shared.spec.check_limits``); None checks no size.
    """
    validate(request, INDICATOR_OUTPUTS)
    for i, indicator in enumerate(request.strategy.indicators):
        try:
            resolve_params(indicator.type, indicator.params)
        except ParamError as exc:
            raise SpecError(f"strategy.indicators[{i}].params.{exc.key}", exc.message) from exc
    _check_range(request)
    if limits is not None:
        check_limits(request, limits)


def validate_market_request(request: MarketRequest) -> None:
    """The market rules of every job kind (``shared.spec.validate_market``) plus the date
    bounds and the synthetic market's calendar, as ``validate_request`` applies them."""
    validate_market(request)
    _check_range(request)


def _check_range(request: MarketRequest) -> None:
    bounds = []
    for name, is_end in (("start", False), ("end", True)):
        text = getattr(request.data, name)
        try:
            bounds.append(parse_bound(text, end=is_end))
        except ValueError as exc:
            raise SpecError(
                f"data.{name}",
                f"{text!r} is not a date the pipeline can use: use an ISO-8601 date between "
                f"1678 and {_LAST_TIME.year}, e.g. 2024-01-31",
            ) from exc
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise SpecError("data.end", "must not be before data.start")
    if request.data.source is DataSource.SYNTHETIC:
        _check_synthetic(request, start, end)


def _check_synthetic(
    request: MarketRequest, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> None:
    """The synthetic market is ``data.bars`` bars of the finest timeframe from
    ``SYNTHETIC_START``: every other timeframe must be a whole multiple of it, the series must
    end before the last representable date, and a ``start``/``end`` window must overlap it."""
    finest = finest_timeframe(request.timeframes)
    base = timeframe_delta(finest)
    for i, tf in enumerate(request.timeframes):
        ratio = timeframe_delta(tf) / base
        if ratio != int(ratio):
            raise SpecError(
                f"timeframes[{i}]",
                f"the synthetic market builds {tf} bars from {finest} bars, so {tf} must be "
                f"a whole multiple of {finest}",
            )
    bars = request.data.bars
    span_ns = base.value * bars
    if span_ns > _LAST_TIME.value - SYNTHETIC_START.value:
        years = span_ns / pd.Timedelta(days=365.25).value
        raise SpecError(
            "data.bars",
            f"{bars:,} bars of {finest} span {years:,.0f} years from "
            f"{SYNTHETIC_START:%Y-%m-%d}, past {_LAST_TIME:%Y-%m-%d}, the last date the pipeline "
            "can represent; use fewer data.bars or a finer timeframe",
        )
    market_end = SYNTHETIC_START + pd.Timedelta(span_ns, unit="ns")
    span = (
        f"the synthetic market ({bars:,} data.bars of {finest}) runs from "
        f"{SYNTHETIC_START:%Y-%m-%d} to {market_end:%Y-%m-%d %H:%M}"
    )
    if start is not None and start >= market_end:
        raise SpecError(
            "data.start", f"{span}, so this start leaves no bars: move it earlier or raise bars"
        )
    if end is not None and end < SYNTHETIC_START:
        raise SpecError("data.end", f"{span}, so this end leaves no bars: move it later")
