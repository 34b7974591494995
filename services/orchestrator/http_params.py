"""The HTTP API's query parameters and request bodies, checked the way gRPC checks fields:
anything a route does not take, or cannot read, is INVALID_ARGUMENT naming the parameter."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aiohttp import web
from multidict import MultiMapping

from shared import errors
from shared.rpc.v1 import progress_pb2 as ppb

INT32_MAX = 2**31 - 1
_STATE_NAMES = {
    name.removeprefix("JOB_STATE_"): value
    for name, value in ppb.JobState.items()
    if value != ppb.JOB_STATE_UNSPECIFIED
}


def query_params(request: web.Request, allowed: Sequence[str]) -> MultiMapping[str]:
    """The query, refusing parameters the route does not take (a typo is not ignored)."""
    for name in request.query:
        if name not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise errors.InvalidArgumentError(
                f"unknown query parameter; this route takes: {listed}", field=name[:80]
            )
    return request.query


def int32_param(query: Mapping[str, str], name: str) -> int:
    text = query.get(name, "")
    if not text:
        return 0
    if not (text.isascii() and text.lstrip("-").isdigit()) or abs(int(text)) > INT32_MAX:
        raise errors.InvalidArgumentError(
            f"{text[:40]!r} is not a whole number; give e.g. {name}=50, or leave it out for the "
            "default",
            field=name,
        )
    return int(text)


def parse_states(values: Sequence[str]) -> list[ppb.JobState.ValueType]:
    """``RUNNING``, ``running`` or ``JOB_STATE_RUNNING``; repeated or comma-separated."""
    out: list[ppb.JobState.ValueType] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().upper().removeprefix("JOB_STATE_")
            if name not in _STATE_NAMES:
                raise errors.InvalidArgumentError(
                    f"{part[:40]!r} is not a job state; use one of "
                    f"{', '.join(_STATE_NAMES)} (repeat state= for several)",
                    field="state",
                )
            out.append(_STATE_NAMES[name])
    return out


async def cancel_reason(request: web.Request) -> str:
    """``reason`` from an optional JSON body ``{"reason": "..."}``."""
    raw = await request.read()
    if not raw.strip():
        return ""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidArgumentError(
            'not JSON; send {"reason": "why"} or no body', field="body"
        ) from None
    if not isinstance(document, dict):
        raise errors.InvalidArgumentError(
            'a JSON object is expected: {"reason": "why"}', field="body"
        )
    unknown = [str(k) for k in document if k != "reason"]
    if unknown:
        raise errors.InvalidArgumentError(
            f"unknown key {unknown[0][:40]!r}; the body takes only reason", field="body"
        )
    reason = document.get("reason", "")
    if not isinstance(reason, str):
        raise errors.InvalidArgumentError("must be a string", field="reason")
    return reason
