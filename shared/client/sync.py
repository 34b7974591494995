"""The blocking client: for scripts, notebooks and services without an event loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from shared import errors
from shared.client import datasets as upload
from shared.client.convert import build_request, job_from_proto, model_from_proto
from shared.client.types import Job, ModelInfo
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc


class Client:
    """``with Client("localhost:50051") as tw: for event in tw.train(...): ...``

    Every method raises a ``shared.errors.TrainwireError`` subclass (``NotFoundError``,
    ``InvalidArgumentError`` with ``.field``, ``UnavailableError``, ...) instead of grpc errors.
    """

    def __init__(
        self, target: str = "localhost:50051", *, security: plumbing.Security = plumbing.INSECURE
    ) -> None:
        self.target = target
        self._channel = plumbing.create_sync_channel(target, security)
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
        self, symbols: Sequence[str] = (), timeframes: Sequence[str] = (), **options: Any
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
        self, symbols: Sequence[str] = (), timeframes: Sequence[str] = (), **options: Any
    ) -> Job:
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return job_from_proto(self._call(self._stub.SubmitJob, request))

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[JobEvent]:
        """Events with seq > ``after_seq`` until the terminal one (reconnect with the last seq)."""
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    def job(self, job_id: str) -> Job:
        return job_from_proto(self._call(self._stub.GetJob, opb.GetJobRequest(job_id=job_id)))

    def jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
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
            )
            out.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                break
        return out

    def cancel(self, job_id: str, reason: str = "") -> Job:
        request = opb.CancelJobRequest(job_id=job_id, reason=reason)
        return job_from_proto(self._call(self._stub.CancelJob, request))

    # -- nodes and models ----------------------------------------------------------------------

    def nodes(self) -> list[NodeStatus]:
        reply = self._call(self._stub.ListNodes, opb.ListNodesRequest())
        return [serde.node_status_from_proto(n) for n in reply.nodes]

    def models(self, strategy: str = "") -> list[ModelRef]:
        out: list[ModelRef] = []
        token = ""
        while True:
            reply = self._call(
                self._stub.ListModels, opb.ListModelsRequest(strategy=strategy, page_token=token)
            )
            out.extend(serde.model_ref_from_proto(m) for m in reply.models)
            token = reply.next_page_token
            if not token:
                return out

    def model(self, name: str) -> ModelInfo:
        return model_from_proto(self._call(self._stub.GetModel, opb.GetModelRequest(name=name)))

    def download(self, name: str, directory: str | Path) -> Path:
        """Save the model as ``directory/<name>/model.safetensors`` with ``metadata.json``
        beside it; return the weights' path.

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
            described = self._stub.GetModel(opb.GetModelRequest(name=ref.name))
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

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset's latest version."""
        out: list[DatasetInfo] = []
        token = ""
        while True:
            reply = self._call(self._stub.ListDatasets, dpb.ListDatasetsRequest(page_token=token))
            out.extend(serde.dataset_from_proto(d) for d in reply.datasets)
            token = reply.next_page_token
            if not token:
                return out

    def get_dataset(self, name: str) -> DatasetInfo:
        """A dataset's latest version, or one version as ``name@sha256``."""
        return serde.dataset_from_proto(
            self._call(self._stub.GetDataset, dpb.GetDatasetRequest(name=name))
        )

    def delete_dataset(self, name: str) -> DatasetInfo:
        """Delete every version of a dataset; returns the latest as it was."""
        return serde.dataset_from_proto(
            self._call(self._stub.DeleteDataset, dpb.DeleteDatasetRequest(name=name))
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None

    def _events(self, stream: Any) -> Iterator[JobEvent]:
        try:
            for message in stream:
                yield serde.event_from_proto(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        finally:
            stream.cancel()
