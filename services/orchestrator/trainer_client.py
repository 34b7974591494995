"""Every call the orchestrator makes to a trainer node, behind one typed client.

Protobuf, stubs, ``AioRpcError`` codes and deadlines stop here: callers pass domain values (a
``JobRequest`` of any kind, job ids) and get domain values back (``JobEvent`` with the trainer's
seq, ``TrainResult``, ``NodeInfo``), or one of the errors below, each naming what the trainer
said.
The dispatcher and the registry depend on the ``TrainerClient`` protocol only, so they are
tested with a fake client and no servers.

Errors, by the status the trainer (or the channel) answered:
- ``NoSlot``: RESOURCE_EXHAUSTED, the node has no free slot for the job;
- ``JobUnknown``: NOT_FOUND, the node does not know the job (e.g. it restarted);
- ``Unreachable``: UNAVAILABLE or CANCELLED, the stream broke or the node cannot be reached (the
  node may still run the job: re-attach);
- ``TrainerCallError``: any other status (``code`` names it; INVALID_ARGUMENT means the node
  refused the request itself), or a failure outside gRPC's status codes (``code`` "ERROR").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from shared.job_requests import JobRequest
from shared.jobs import JobEvent, TrainResult
from shared.nodes import NodeInfo
from shared.rpc import plumbing, serde, serde_requests
from shared.rpc.v1 import progress_pb2, trainer_pb2, trainer_pb2_grpc

CANCEL_TIMEOUT_S = 5.0
"""Deadline of a ``Trainer.Cancel`` call."""
RESEND_TIMEOUT_S = 600.0
"""Deadline of a ``Trainer.ResendModel`` call (it uploads the whole model)."""


class TrainerCallError(Exception):
    """A trainer call failed; ``code`` is the gRPC status name ("ERROR" outside gRPC's codes)
    and ``detail`` what the node or the channel said."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def invalid_request(self) -> bool:
        """The node refused the request itself (INVALID_ARGUMENT)."""
        return self.code == "INVALID_ARGUMENT"


class NoSlot(TrainerCallError):
    """RESOURCE_EXHAUSTED: the node has no free slot."""


class JobUnknown(TrainerCallError):
    """NOT_FOUND: the node does not know the job."""


class Unreachable(TrainerCallError):
    """UNAVAILABLE or CANCELLED: the node cannot be reached, or the stream broke."""


_BY_CODE: dict[grpc.StatusCode, type[TrainerCallError]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: NoSlot,
    grpc.StatusCode.NOT_FOUND: JobUnknown,
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.CANCELLED: Unreachable,
}


def _typed(exc: grpc.RpcError) -> TrainerCallError:
    if isinstance(exc, grpc.aio.AioRpcError):
        code = exc.code()
        return _BY_CODE.get(code, TrainerCallError)(code.name, exc.details() or "")
    return TrainerCallError("ERROR", str(exc))


@dataclass(frozen=True)
class RelayedEvent:
    """One event of a trainer's log: ``node_seq`` is the trainer's own seq (``attach`` resumes
    after it); ``event`` carries that seq too, to be re-sequenced into the job's log."""

    node_seq: int
    event: JobEvent


@dataclass(frozen=True)
class Probe:
    """The outcome of a health probe: ``info`` when the node answered SERVING and ``GetInfo``;
    else ``detail`` says why it is out."""

    info: NodeInfo | None
    detail: str = ""


class TrainerClient(Protocol):
    """The calls the orchestrator makes to one trainer node."""

    @property
    def address(self) -> str: ...

    def train(
        self,
        job_id: str,
        request: JobRequest,
        *,
        upload_target: str,
        upload_token: str,
    ) -> AsyncIterator[RelayedEvent]:
        """Start the job (``Trainer.Train``, the request of whatever kind it is) and stream its
        events until the terminal one."""
        ...

    def attach(self, job_id: str, after_seq: int) -> AsyncIterator[RelayedEvent]:
        """Stream a job the node already runs (``Trainer.Attach``), after ``after_seq``."""
        ...

    async def cancel(
        self, job_id: str, reason: str, *, timeout_s: float = CANCEL_TIMEOUT_S
    ) -> None:
        """Ask the node to cancel the job (``Trainer.Cancel``)."""
        ...

    async def resend_model(
        self,
        job_id: str,
        *,
        upload_target: str,
        upload_token: str,
        timeout_s: float = RESEND_TIMEOUT_S,
    ) -> TrainResult:
        """Ask the node to upload the job's spooled model again (``Trainer.ResendModel``)."""
        ...

    async def probe(self, timeout_s: float) -> Probe:
        """grpc.health.v1 ``Check``, then ``GetInfo``, each under ``timeout_s``."""
        ...

    async def close(self) -> None: ...


class GrpcTrainerClient:
    """``TrainerClient`` over one gRPC channel to the node."""

    def __init__(self, address: str, security: plumbing.Security = plumbing.INSECURE) -> None:
        self._address = address
        self._channel = plumbing.create_channel(address, security)
        self._stub = trainer_pb2_grpc.TrainerStub(self._channel)

    @property
    def address(self) -> str:
        return self._address

    async def train(
        self,
        job_id: str,
        request: JobRequest,
        *,
        upload_target: str,
        upload_token: str,
    ) -> AsyncIterator[RelayedEvent]:
        job = serde_requests.trainer_job_to_proto(job_id, request, upload_target, upload_token)
        async for relayed in _events(self._stub.Train(job)):
            yield relayed

    async def attach(self, job_id: str, after_seq: int) -> AsyncIterator[RelayedEvent]:
        call = self._stub.Attach(trainer_pb2.AttachRequest(job_id=job_id, after_seq=after_seq))
        async for relayed in _events(call):
            yield relayed

    async def cancel(
        self, job_id: str, reason: str, *, timeout_s: float = CANCEL_TIMEOUT_S
    ) -> None:
        try:
            await self._stub.Cancel(
                trainer_pb2.CancelRequest(job_id=job_id, reason=reason), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            raise _typed(exc) from None

    async def resend_model(
        self,
        job_id: str,
        *,
        upload_target: str,
        upload_token: str,
        timeout_s: float = RESEND_TIMEOUT_S,
    ) -> TrainResult:
        try:
            reply = await self._stub.ResendModel(
                trainer_pb2.ResendModelRequest(
                    job_id=job_id, upload_target=upload_target, upload_token=upload_token
                ),
                timeout=timeout_s,
            )
        except grpc.RpcError as exc:
            raise _typed(exc) from None
        return serde.result_from_proto(reply.result)

    async def probe(self, timeout_s: float) -> Probe:
        if not await plumbing.probe_health(self._channel, timeout_s):
            return Probe(None, f"no SERVING health answer within {timeout_s:.1f}s")
        try:
            info = await self._stub.GetInfo(trainer_pb2.GetInfoRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            error = _typed(exc)
            return Probe(None, f"GetInfo failed: {error.code}: {error.detail}")
        return Probe(serde.node_info_from_proto(info))

    async def close(self) -> None:
        await self._channel.close(None)


async def _events(
    call: grpc.aio.UnaryStreamCall[Any, progress_pb2.ProgressEvent],
) -> AsyncIterator[RelayedEvent]:
    try:
        async for message in call:
            yield RelayedEvent(message.seq, serde.event_from_proto(message))
    except grpc.RpcError as exc:
        raise _typed(exc) from None
    finally:
        call.cancel()  # a no-op once the call ended; stops the stream when the relay is cancelled


def connect(address: str, security: plumbing.Security = plumbing.INSECURE) -> TrainerClient:
    """A client for the trainer at ``address`` (the channel connects lazily)."""
    return GrpcTrainerClient(address, security)
