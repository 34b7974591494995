"""Send an optimization's best configuration to the orchestrator's repository, retried.

One unary call, ``ModelUpload.UploadConfiguration``, under the job's upload token. The
orchestrator stores it idempotently per job, so every transient failure (the orchestrator
restarting, a lost reply, a deadline) is simply retried with the same text: a retry after a
stored-but-unanswered call gets the version already stored. Anything else — a refused token, a
sha256 or a field the orchestrator rejects — ends at once in ``UploadError`` with the status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import grpc

from shared.cancellation import CancellationToken
from shared.results import ConfigurationRef
from shared.rpc import plumbing, serde_results
from shared.rpc.plumbing import Security
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc

from .uploader import UploadError

_LOGGER = logging.getLogger(__name__)
DEADLINE_S = 30.0
"""Per call: a configuration is a few KiB, the orchestrator fsyncs it and answers."""
MAX_BACKOFF_S = 30.0
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


async def store_configuration(
    *,
    target: str,
    job_id: str,
    token: str,
    text: str,
    sha256: str,
    security: Security,
    attempts: int = 4,
    backoff_s: float = 0.5,
    cancel: CancellationToken | None = None,
    deadline_s: float = DEADLINE_S,
) -> ConfigurationRef:
    """Store ``text`` (with its ``sha256``) as job ``job_id``'s configuration on the
    orchestrator at ``target``; the stored version's ref. Transient failures are retried up
    to ``attempts`` calls with jittered exponential backoff; ``cancel`` stops between calls
    (``shared.cancellation.CancelledError``). Raises ``UploadError`` (with ``code``) when the
    orchestrator refuses or the attempts run out."""
    request = upload_pb2.ConfigurationUpload(
        job_id=job_id, token=token, configuration_json=text, sha256=sha256
    )
    attempts = max(1, attempts)
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            async with plumbing.create_channel(target, security) as channel:
                stub = upload_pb2_grpc.ModelUploadStub(channel)
                ref = await stub.UploadConfiguration(request, timeout=deadline_s)
            return serde_results.configuration_from_proto(ref)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            detail = exc.details() or ""
            if code not in _RETRYABLE or attempt == attempts:
                raise UploadError(
                    f"storing job {job_id}'s configuration on {target} failed after {attempt} "
                    f"attempt(s): {code.name}: {detail}",
                    code,
                ) from exc
            pause = random.uniform(delay / 2, delay)
            _LOGGER.warning(
                "job %s: configuration upload attempt %d failed (%s: %s); retrying in %.1fs",
                job_id,
                attempt,
                code.name,
                detail,
                pause,
            )
            await _sleep(pause, cancel)
            delay = min(delay * 2, MAX_BACKOFF_S)
    raise AssertionError("unreachable")  # the last attempt returns or raises


async def _sleep(seconds: float, cancel: CancellationToken | None) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if cancel is not None:
            cancel.raise_if_cancelled()
        await asyncio.sleep(min(left, 0.25))
    if cancel is not None:
        cancel.raise_if_cancelled()
