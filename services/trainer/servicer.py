"""The Trainer RPCs: protobuf in, dataclasses to the job runner, protobuf out.

Job ids are checked by the job runner's entry points (``start``, ``get``, ``resend``), one rule
for every RPC that takes one, before anything touches the disk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from shared import errors
from shared.rpc import serde, serde_requests
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import progress_pb2, trainer_pb2, trainer_pb2_grpc

from .jobs import JobRunner, JobSpec
from .kinds import validate_kind
from .uploader import UploadError

Context = grpc.aio.ServicerContext[Any, Any]


class TrainerServicer(trainer_pb2_grpc.TrainerServicer):
    def __init__(
        self,
        runner: JobRunner,
        node_info: Callable[[], trainer_pb2.NodeInfo],
        validate: Callable[[Any], None],
        upload_override: str = "",
    ) -> None:
        self._upload_override = upload_override
        self._runner = runner
        self._node_info = node_info
        self._validate = validate

    @rpc_method
    async def Train(
        self, request: trainer_pb2.TrainerJob, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        if not (request.upload_target or self._upload_override):
            raise errors.InvalidArgumentError(
                "the orchestrator's upload address is required", field="upload_target"
            )
        job_request = serde_requests.job_request_from_trainer_job(request)
        validate_kind(job_request, self._validate)
        run = self._runner.start(
            JobSpec(
                job_id=request.job_id,
                request=job_request,
                # A node started with --orchestrator uploads to the address it was given: the one
                # the orchestrator advertises may not resolve from this node's network.
                upload_target=self._upload_override or request.upload_target,
                upload_token=request.upload_token,
            )
        )
        async for event in run.events_after(0):
            yield serde.event_to_proto(event)

    @rpc_method
    async def Cancel(
        self, request: trainer_pb2.CancelRequest, context: Context
    ) -> trainer_pb2.CancelResponse:
        state = self._runner.cancel(request.job_id, request.reason)
        return trainer_pb2.CancelResponse(state=serde.state_to_proto(state))

    @rpc_method
    async def Attach(
        self, request: trainer_pb2.AttachRequest, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        if request.after_seq < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="after_seq")
        run = self._runner.get(request.job_id)
        async for event in run.events_after(request.after_seq):
            yield serde.event_to_proto(event)

    @rpc_method
    async def ResendModel(
        self, request: trainer_pb2.ResendModelRequest, context: Context
    ) -> trainer_pb2.ResendModelResponse:
        if not (request.upload_target or self._upload_override):
            raise errors.InvalidArgumentError(
                "the orchestrator's upload address is required", field="upload_target"
            )
        try:
            result = await self._runner.resend(
                request.job_id,
                self._upload_override or request.upload_target,
                request.upload_token,
            )
        except UploadError as exc:
            raise errors.UnavailableError(f"the re-send failed: {exc}") from exc
        return trainer_pb2.ResendModelResponse(result=serde.result_to_proto(result))

    @rpc_method
    async def GetInfo(
        self, request: trainer_pb2.GetInfoRequest, context: Context
    ) -> trainer_pb2.NodeInfo:
        return self._node_info()
