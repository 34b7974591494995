"""The blocking client: for scripts, notebooks and services without an event loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from shared import errors
from shared.client import datasets as upload
from shared.client.convert import build_request, job_from_proto, model_from_proto
from shared.client.policy import DEFAULT_TIMEOUT, service_config
from shared.client.types import Job, ModelInfo, TrainOptions
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb

_Request = TypeVar("_Request", bound=Message)
_Reply = TypeVar("_Reply", bound=Message)


class _EventStream(Protocol):
    """A server stream of events (``grpc.CallIterator``, whose stubs leave ``cancel`` untyped)."""

    def __iter__(self) -> Iterator[ppb.ProgressEvent]: ...
    def cancel(self) -> object: ...


class Client:
    """``with Client("localhost:50051") as tw: for event in tw.train(...): ...``

    Every method raises a ``shared.errors.TrainwireError`` subclass (``NotFoundError``,
    ``InvalidArgumentError`` with ``.field``, ``UnavailableError``, ...) instead of grpc errors.

    Unary calls have a deadline: ``timeout`` seconds (``None``: none), or a call's own
    ``timeout=``. Reads are retried on ``UNAVAILABLE`` within it (``shared.client.policy``).
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        security: plumbing.Security = plumbing.INSECURE,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = plumbing.create_sync_channel(
            target, security, service_config=service_config()
        )
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # -- jobs ----------------------------------------------------------------------------------

    def train(
        self,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        **options: Unpack[TrainOptions],
    ) -> Iterator[JobEvent]:
        """Submit and follow: every event of the new job until its terminal one.

        Options: ``data`` (a ``shared.spec.DataSpec``, e.g. ``shared.client.data.directory(
        "fx")``; without it only ``SYNTH`` symbols train, on the synthetic market), ``epochs``,
        ``seed``, ``batch_size``, ``bars``, ``strategy_yaml``, ``strategy_file``,
        ``request_id``, ``require_gpu``, ``node``.
        """
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return self._events(self._stub.Train(request))

    def submit(
        self,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        timeout: float | None = None,
        **options: Unpack[TrainOptions],
    ) -> Job:
        """Submit and return at once; ``options`` as for ``train``."""
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return job_from_proto(self._call(self._stub.SubmitJob, request, timeout))

    def watch(self, job_id: str, *, after_seq: int = 0) -> Iterator[JobEvent]:
        """Events with seq > ``after_seq`` until the terminal one (reconnect with the last seq)."""
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    def job(self, job_id: str, *, timeout: float | None = None) -> Job:
        request = opb.GetJobRequest(job_id=job_id)
        return job_from_proto(self._call(self._stub.GetJob, request, timeout))

    def jobs(
        self, *, states: Sequence[JobState] = (), limit: int = 100, timeout: float | None = None
    ) -> list[Job]:
        """Newest first, at most ``limit``."""
        out: list[Job] = []
        token = ""
        while len(out) < limit:
            reply = self._call(
                self._stub.ListJobs,
                opb.ListJobsRequest(
                    states=[serde.state_to_proto(s) for s in states],
                    page_size=min(limit - len(out), 1000),
                    page_token=token,
                ),
                timeout,
            )
            out.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                break
        return out

    def cancel(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        request = opb.CancelJobRequest(job_id=job_id, reason=reason)
        return job_from_proto(self._call(self._stub.CancelJob, request, timeout))

    # -- nodes and models ----------------------------------------------------------------------

    def nodes(self, *, timeout: float | None = None) -> list[NodeStatus]:
        reply = self._call(self._stub.ListNodes, opb.ListNodesRequest(), timeout)
        return [serde.node_status_from_proto(n) for n in reply.nodes]

    def models(self, *, strategy: str = "", timeout: float | None = None) -> list[ModelRef]:
        out: list[ModelRef] = []
        token = ""
        while True:
            request = opb.ListModelsRequest(strategy=strategy, page_token=token)
            reply = self._call(self._stub.ListModels, request, timeout)
            out.extend(serde.model_ref_from_proto(m) for m in reply.models)
            token = reply.next_page_token
            if not token:
                return out

    def model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        request = opb.GetModelRequest(name=name)
        return model_from_proto(self._call(self._stub.GetModel, request, timeout))

    def download(self, name: str, directory: str | Path, *, timeout: float | None = None) -> Path:
        """Save the model as ``directory/<name>/model.safetensors`` with ``metadata.json``
        beside it; return the weights' path. The bytes stream has no deadline; ``timeout``
        bounds the description fetched afterwards.

        The weights' sha256 is checked and the metadata is that of the same version; both go
        to temporary files renamed into place only once both are complete."""
        from shared.client.download import Download

        download = Download(Path(directory))
        try:
            for chunk in self._stub.DownloadModel(opb.DownloadModelRequest(name=name)):
                if chunk.HasField("header"):
                    download.begin(serde.model_ref_from_proto(chunk.header))
                else:
                    download.write(chunk.data)
            ref = download.verified()
            described = self._stub.GetModel(
                opb.GetModelRequest(name=ref.name), timeout=self._deadline(timeout)
            )
            return download.commit(
                serde.model_ref_from_proto(described.ref), described.metadata_json
            )
        except grpc.RpcError as exc:
            download.abandon()
            raise from_rpc_error(exc, self.target) from None
        except BaseException:
            download.abandon()
            raise

    # -- datasets ------------------------------------------------------------------------------

    def upload_dataset(self, paths: Sequence[str | Path], *, name: str = "") -> DatasetInfo:
        """Upload CSV/Parquet files as the dataset ``name`` (default: the first file's stem);
        uploading a name again stores a new version. Returns what the orchestrator stored.

        The files go gzip-compressed with their sizes and sha256s, which the orchestrator
        checks, with the files' OHLCV shape, before it keeps anything."""
        files = upload.prepare(paths)
        stream = upload.UploadStream(name or upload.default_name([f.path for f in files]), files)
        try:
            reply = self._stub.UploadDataset(iter(stream))
        except grpc.RpcError as exc:
            if stream.problem:
                raise ValueError(stream.problem) from None
            raise from_rpc_error(exc, self.target) from None
        if stream.problem:  # the server accepted a stream that ended early: never expected
            raise errors.DataLossError(stream.problem)
        return serde.dataset_from_proto(reply)

    def list_datasets(self, *, timeout: float | None = None) -> list[DatasetInfo]:
        """Every dataset's latest version."""
        out: list[DatasetInfo] = []
        token = ""
        while True:
            request = dpb.ListDatasetsRequest(page_token=token)
            reply = self._call(self._stub.ListDatasets, request, timeout)
            out.extend(serde.dataset_from_proto(d) for d in reply.datasets)
            token = reply.next_page_token
            if not token:
                return out

    def get_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        """A dataset's latest version, or one version as ``name@sha256``."""
        request = dpb.GetDatasetRequest(name=name)
        return serde.dataset_from_proto(self._call(self._stub.GetDataset, request, timeout))

    def delete_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        """Delete every version of a dataset; returns the latest as it was."""
        request = dpb.DeleteDatasetRequest(name=name)
        return serde.dataset_from_proto(self._call(self._stub.DeleteDataset, request, timeout))

    # -- plumbing ------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Reply],
        request: _Request,
        timeout: float | None,
    ) -> _Reply:
        """One unary call with its deadline (``timeout``, else the client's); typed errors."""
        try:
            return method(request, timeout=self._deadline(timeout))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None

    def _events(self, stream: _EventStream) -> Iterator[JobEvent]:
        try:
            for message in stream:
                yield serde.event_from_proto(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        finally:
            stream.cancel()
