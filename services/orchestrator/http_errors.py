"""The HTTP API's errors: the domain's errors as 4xx/5xx with a JSON body, never a bare 500.

Every error a handler raises becomes ``{"code": "INVALID_ARGUMENT", "message": ..., "field":
..., "reason": ...}``: ``code`` is the gRPC status name the same mistake gets over gRPC,
``message`` the same text (``"field: what to change"``), ``field`` the request field to fix
(a path or query parameter, a body key, a header). aiohttp's own refusals (no such route, wrong
method, a body over the size limit) get the same shape. Anything else is a bug: it is logged with
its traceback and answered 500 ``INTERNAL`` without internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared import errors
from shared.rpc.errors import MAX_MESSAGE_CHARS, as_domain_error

_LOGGER = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The usual gRPC → HTTP mapping (google.rpc.Code's documented HTTP equivalents).
_HTTP_STATUS: dict[type[errors.TrainwireError], int] = {
    errors.InvalidArgumentError: 400,
    errors.FailedPreconditionError: 400,
    errors.OutOfRangeError: 400,
    errors.UnauthenticatedError: 401,
    errors.PermissionDeniedError: 403,
    errors.NotFoundError: 404,
    errors.AlreadyExistsError: 409,
    errors.ResourceExhaustedError: 429,
    errors.DataLossError: 500,
    errors.UnimplementedError: 501,
    errors.UnavailableError: 503,
}
_CODE_OF_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[: MAX_MESSAGE_CHARS - 40]}… ({len(text)} characters in all)"


def http_status(exc: errors.TrainwireError) -> int:
    for cls, status in _HTTP_STATUS.items():
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: errors.TrainwireError) -> dict[str, str]:
    """The JSON body of an error reply; ``message`` is the text gRPC's status carries."""
    code = "INTERNAL"
    for cls in _HTTP_STATUS:
        if isinstance(exc, cls):
            code = cls.reason
            break
    body = {
        "code": code,
        "message": _clip(f"{exc.field}: {exc.message}" if exc.field else exc.message),
        "reason": exc.reason,
    }
    if exc.field:
        body["field"] = _clip(exc.field)
    return body


def error_response(exc: errors.TrainwireError) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.UnauthenticatedError) else {}
    return web.json_response(error_body(exc), status=http_status(exc), headers=headers)


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    code = _CODE_OF_STATUS.get(exc.status, "INVALID_ARGUMENT" if exc.status < 500 else "INTERNAL")
    if exc.status == 404:
        message = f"no such path {request.path!r}; the API is under /api/v1/ (see the README)"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    elif exc.status == 413:
        message = f"the request body is too large ({exc.reason})"
    else:
        message = exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return web.json_response(
        {"code": code, "message": message, "reason": code}, status=exc.status, headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc, request)
    except Exception as exc:
        domain = as_domain_error(exc)
        if domain is None:
            _LOGGER.exception("HTTP %s %s failed", request.method, request.path)
            return web.json_response(
                {
                    "code": "INTERNAL",
                    "message": f"internal error in {request.method} {request.path}; see the "
                    "orchestrator's log",
                    "reason": "INTERNAL",
                },
                status=500,
            )
        _LOGGER.info(
            "HTTP %s %s: %s %s", request.method, request.path, type(domain).__name__, domain
        )
        return error_response(domain)


def json_dumps(document: object) -> str:
    """Compact JSON for replies (one line, so it fits an SSE ``data:`` field too)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
