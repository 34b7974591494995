"""The one error hierarchy: domain code raises these, the servicer edge maps them to gRPC.

Each class fixes the status a client sees; ``reason`` is a stable machine-readable word (AIP-193
``ErrorInfo.reason``); ``field`` names the request field to fix, where there is one.
"""

from __future__ import annotations


class TrainwireError(Exception):
    reason = "ERROR"

    def __init__(self, message: str, *, reason: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.field = field
        self.code = ""
        """The gRPC status name, on errors a client received (e.g. ``NOT_FOUND``)."""


class InvalidArgumentError(TrainwireError):
    reason = "INVALID_ARGUMENT"


class NotFoundError(TrainwireError):
    reason = "NOT_FOUND"


class AlreadyExistsError(TrainwireError):
    reason = "ALREADY_EXISTS"


class FailedPreconditionError(TrainwireError):
    reason = "FAILED_PRECONDITION"


class OutOfRangeError(TrainwireError):
    reason = "OUT_OF_RANGE"


class PermissionDeniedError(TrainwireError):
    reason = "PERMISSION_DENIED"


class UnauthenticatedError(TrainwireError):
    reason = "UNAUTHENTICATED"


class ResourceExhaustedError(TrainwireError):
    reason = "RESOURCE_EXHAUSTED"


class UnavailableError(TrainwireError):
    reason = "UNAVAILABLE"


class DataLossError(TrainwireError):
    reason = "DATA_LOSS"


class UnimplementedError(TrainwireError):
    reason = "UNIMPLEMENTED"
