"""Request validation for the pipeline: ``shared.spec.validate`` plus what only it knows.

``validate_request`` is what the orchestrator calls before it queues a job and what
``run_training`` calls before it starts one: the spec rules with the pipeline's indicator
catalogue, indicator parameters, date bounds and synthetic-timeframe compatibility, all reported
as ``SpecError`` with the proto field path to fix.
"""

from __future__ import annotations

from shared.pipeline.indicators import INDICATOR_OUTPUTS, ParamError, resolve_params
from shared.pipeline.market import finest_timeframe, parse_bound, timeframe_delta
from shared.spec import DataSource, SpecError, TrainingRequest, validate


def validate_request(request: TrainingRequest) -> None:
    """Raise ``SpecError`` for the first problem that would stop this request from training."""
    validate(request, INDICATOR_OUTPUTS)
    for i, indicator in enumerate(request.strategy.indicators):
        try:
            resolve_params(indicator.type, indicator.params)
        except ParamError as exc:
            raise SpecError(f"strategy.indicators[{i}].params.{exc.key}", exc.message) from exc
    bounds = []
    for name, is_end in (("start", False), ("end", True)):
        text = getattr(request.data, name)
        try:
            bounds.append(parse_bound(text, end=is_end))
        except ValueError as exc:
            raise SpecError(
                f"data.{name}", f"{text!r} is not an ISO-8601 date or timestamp"
            ) from exc
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise SpecError("data.end", "must not be before data.start")
    if request.data.source is DataSource.SYNTHETIC and len(request.timeframes) > 1:
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
