"""The exit codes of the ``trainwire`` command, one table for the service verbs and the client
verbs alike."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the job failed, or a health check found the server not SERVING
    BAD_CONFIGURATION = 2  # configuration that cannot work, e.g. a missing TLS file
    CANCELLED = 3  # the job was cancelled
    UNREACHABLE = 4  # the orchestrator (or the server checked) could not be reached
    REJECTED = 5  # bad input, unknown job or model
    RPC_ERROR = 6  # any other RPC error
    INTERRUPTED = 130  # Ctrl-C
