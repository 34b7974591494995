"""Map the domain's errors to gRPC statuses with AIP-193 details, at the servicer edge.

``@rpc_method`` wraps unary and streaming handlers alike: a ``TrainwireError`` or ``SpecError``
becomes its precise status plus ``google.rpc.Status`` details (``BadRequest.FieldViolation``
naming the field, ``ErrorInfo`` with a stable reason), so grpcurl shows which field to fix; any
other exception is logged with its traceback and reported as INTERNAL without internals.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from shared import errors
from shared.spec import SpecError

_LOGGER = logging.getLogger(__name__)
DOMAIN = "trainwire.dev"

_CODES: dict[type[errors.TrainwireError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.DataLossError: grpc.StatusCode.DATA_LOSS,
    errors.UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
}


MAX_MESSAGE_CHARS = 1024
"""Status messages echo bad input; a huge value must not turn INVALID_ARGUMENT into a
RESOURCE_EXHAUSTED from gRPC's 16 KiB metadata limit, so messages are cut to this."""


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[: MAX_MESSAGE_CHARS - 40]}… ({len(text)} characters in all)"


def to_status(exc: errors.TrainwireError) -> grpc.Status:
    code = _CODES.get(type(exc), grpc.StatusCode.UNKNOWN)
    for cls, mapped in _CODES.items():
        if isinstance(exc, cls):
            code = mapped
            break
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN))
    details.append(info)
    if exc.field:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=_clip(exc.field), description=_clip(exc.message)
                    )
                ]
            )
        )
        details.append(bad)
    message = _clip(f"{exc.field}: {exc.message}" if exc.field else exc.message)
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    result: grpc.Status = rpc_status.to_status(status)
    return result


def as_domain_error(exc: BaseException) -> errors.TrainwireError | None:
    if isinstance(exc, errors.TrainwireError):
        return exc
    if isinstance(exc, SpecError):
        return errors.InvalidArgumentError(exc.message, field=exc.field)
    return None


async def abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: errors.TrainwireError
) -> NoReturn:
    status = to_status(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable")  # context.abort raises


F = TypeVar("F", bound=Callable[..., Any])


def rpc_method(func: F) -> F:
    """Translate domain errors raised by a servicer method into precise gRPC statuses."""
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def stream_wrapper(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for item in func(self, request, context):
                    yield item
            except Exception as exc:
                await _handle(func.__qualname__, context, exc)

        return cast(F, stream_wrapper)

    @functools.wraps(func)
    async def unary_wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await func(self, request, context)
        except Exception as exc:
            await _handle(func.__qualname__, context, exc)

    return cast(F, unary_wrapper)


async def _handle(name: str, context: Any, exc: Exception) -> NoReturn:
    domain = as_domain_error(exc)
    if domain is not None:
        _LOGGER.info("%s: %s %s", name, type(domain).__name__, domain)
        await abort(context, domain)
    if isinstance(exc, grpc.aio.AbortError | grpc.RpcError):
        raise exc
    _LOGGER.exception("%s failed", name)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}; see server log")
    raise AssertionError("unreachable")


_CLASSES: dict[grpc.StatusCode, type[errors.TrainwireError]] = {v: k for k, v in _CODES.items()}


def from_rpc_error(exc: grpc.RpcError, target: str = "") -> errors.TrainwireError:
    """The domain error a client sees for a failed call: the class fixed by the status code,
    the server's message, ``reason`` from ErrorInfo and ``field`` from BadRequest details."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else "") or str(code)
    reason, field = "", ""
    try:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    field = bad.field_violations[0].field
    cls = _CLASSES.get(code, errors.TrainwireError)
    if code is grpc.StatusCode.UNAVAILABLE and target:
        message = f"{target} is unreachable: {message}"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        cls = errors.UnavailableError
        message = f"deadline exceeded{f' talking to {target}' if target else ''}: {message}"
    error = cls(
        message,
        reason=reason or (cls.reason if cls is not errors.TrainwireError else code.name),
        field=field,
    )
    error.code = code.name
    return error


__all__ = ["abort", "as_domain_error", "from_rpc_error", "rpc_method", "to_status"]
