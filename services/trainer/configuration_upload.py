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
    unavailable_window_s: float = 0.0,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> ConfigurationRef:
    """Store ``text`` (with its ``sha256``) as job ``job_id``'s configuration on the
    orchestrator at ``target``; the stored version's ref.

    Transient failures are retried up to ``attempts`` calls with jittered exponential backoff
    (capped at ``max_backoff_s``); UNAVAILABLE (the orchestrator down or restarting) also for as
    long as ``unavailable_window_s`` from the first failure, as the model uploader does. Each call
    has ``deadline_s``. ``cancel`` stops between calls and during a backoff
    (``shared.cancellation.CancelledError``). Raises ``UploadError`` (with ``code``) when the
    orchestrator refuses or the retries run out."""
    request = upload_pb2.ConfigurationUpload(
        job_id=job_id, token=token, configuration_json=text, sha256=sha256
    )
    attempts = max(1, attempts)
    delay = backoff_s
    first_failure: float | None = None
    attempt = 0
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled()
        attempt += 1
        try:
            async with plumbing.create_channel(target, security) as channel:
                stub = upload_pb2_grpc.ModelUploadStub(channel)
                ref = await stub.UploadConfiguration(request, timeout=deadline_s)
            return serde_results.configuration_from_proto(ref)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            detail = exc.details() or ""
            now = time.monotonic()
            first_failure = now if first_failure is None else first_failure
            retry = code in _RETRYABLE and attempt < attempts
            if code is grpc.StatusCode.UNAVAILABLE:
                retry = retry or now - first_failure + delay <= unavailable_window_s
            if not retry:
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
            delay = min(delay * 2, max_backoff_s)


async def _sleep(seconds: float, cancel: CancellationToken | None) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if cancel is not None:
            cancel.raise_if_cancelled()
        await asyncio.sleep(min(left, 0.25))
    if cancel is not None:
        cancel.raise_if_cancelled()
