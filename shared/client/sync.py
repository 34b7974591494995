"""The blocking client: for scripts, notebooks and services without an event loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from shared import errors
from shared.client import datasets as upload
from shared.client import kind_requests as kr
from shared.client import operations as op
from shared.client.convert import build_request
from shared.client.policy import DEFAULT_TIMEOUT, service_config
from shared.client.types import (
    BacktestOptions,
    Job,
    ModelInfo,
    OptimizeOptions,
    StrategyInfo,
    TrainOptions,
)
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.results import ConfigurationRef
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.serde_results import configuration_from_proto
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb

_T = TypeVar("_T")


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
    What each unary method does is ``shared.client.operations``, shared with ``AsyncClient``.
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

        Options (``TrainOptions``): ``data`` (a ``shared.spec.DataSpec``, e.g.
        ``shared.client.data.directory("fx")``; without it only ``SYNTH`` symbols train, on the
        synthetic market), ``epochs``, ``seed``, ``batch_size``, ``bars``, ``strategy_yaml``,
        ``strategy_file``, ``request_id``, ``require_gpu``, ``node``, ``start``, ``end``,
        ``market_seed``, ``label_threshold``. The stream has no deadline.
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
        return self._run(op.submit(symbols, timeframes, timeout, options))

    def watch(self, job_id: str, *, after_seq: int = 0) -> Iterator[JobEvent]:
        """Events with seq > ``after_seq`` until the terminal one (reconnect with the last seq)."""
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    def job(self, job_id: str, *, timeout: float | None = None) -> Job:
        return self._run(op.job(job_id, timeout))

    def jobs(
        self, *, states: Sequence[JobState] = (), limit: int = 100, timeout: float | None = None
    ) -> list[Job]:
        """Newest first, at most ``limit``."""
        return self._run(op.jobs(states, limit, timeout))

    def cancel(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        return self._run(op.cancel(job_id, reason, timeout))

    # -- backtests, optimizations, strategies, configurations ----------------------------------

    def backtest(
        self,
        strategy_or_model: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        **options: Unpack[BacktestOptions],
    ) -> Iterator[JobEvent]:
        """Submit a backtest and follow it; the terminal event's ``backtest_result`` has the
        stats, trades and equity curve. ``strategy_or_model``: a rule strategy
        (``strategies()``) with ``params=``, or a stored model's name (it has a ``/``).
        Options (``BacktestOptions``): ``data`` (as for ``train``), ``start``, ``end``, costs
        (``commission_pct`` a fraction, ``slippage_bps``), sizing, ``allow_short``,
        ``stop_loss_pct``/``take_profit_pct`` (fractions). The stream has no deadline."""
        request = kr.backtest_request(strategy_or_model, symbols, timeframes, options)
        return self._events(self._stub.Backtest(request))

    def submit_backtest(
        self,
        strategy_or_model: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        timeout: float | None = None,
        **options: Unpack[BacktestOptions],
    ) -> Job:
        return self._run(
            op.submit_backtest(strategy_or_model, symbols, timeframes, timeout, options)
        )

    def optimize(
        self,
        strategy: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        space: kr.SpaceSpec,
        timeout: float | None = None,
        **options: Unpack[OptimizeOptions],
    ) -> Iterator[JobEvent]:
        """Submit an optimization and follow it; the terminal event's ``optimize_result`` has
        the best parameters, in/out-of-sample stats and the stored configuration. ``space``:
        ``{"fast": (5, 50, 5), "ma": ["sma", "ema"]}`` (typed by the strategy's parameters,
        looked up within ``timeout``) or ``shared.optimize.ParamRange``s. Options
        (``OptimizeOptions``): ``sampler``, ``trials``, ``timeout_s``, ``seed``, ``objective``,
        ``minimize``, ``constraints``, ``fixed_params``, ``parallelism``, ``walk_forward``, and
        the data and costs of ``backtest``."""
        request = self._run(
            op.optimize_request(strategy, symbols, timeframes, space, timeout, options)
        )
        return self._events(self._stub.Optimize(request))

    def submit_optimization(
        self,
        strategy: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        space: kr.SpaceSpec,
        timeout: float | None = None,
        **options: Unpack[OptimizeOptions],
    ) -> Job:
        operation = op.submit_optimization(strategy, symbols, timeframes, space, timeout, options)
        return self._run(operation)

    def strategies(self, *, timeout: float | None = None) -> list[StrategyInfo]:
        """The rule strategies, with each parameter's type, default and range."""
        return self._run(op.strategies(timeout))

    def configurations(
        self, *, strategy: str = "", timeout: float | None = None
    ) -> list[ConfigurationRef]:
        """Stored best configurations (of one strategy, when given)."""
        return self._run(op.configurations(strategy, timeout))

    def configuration(
        self, name: str, *, timeout: float | None = None
    ) -> tuple[ConfigurationRef, str]:
        """A configuration's ref and its JSON text (``name`` without ``_vN``: the latest)."""
        return self._run(op.configuration(name, timeout))

    def download_configuration(self, name: str, directory: str | Path) -> Path:
        """Save ``directory/<name>/configuration.json``, sha256-checked, written atomically."""
        from shared.client.config_download import ConfigurationDownload

        download = ConfigurationDownload(Path(directory))
        request = opb.GetConfigurationRequest(name=name)
        try:
            for chunk in self._stub.DownloadConfiguration(request):
                if chunk.HasField("header"):
                    download.begin(configuration_from_proto(chunk.header))
                else:
                    download.write(chunk.data)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        return download.commit()

    # -- nodes and models ----------------------------------------------------------------------

    def nodes(self, *, timeout: float | None = None) -> list[NodeStatus]:
        return self._run(op.nodes(timeout))

    def models(self, *, strategy: str = "", timeout: float | None = None) -> list[ModelRef]:
        return self._run(op.models(strategy, timeout))

    def model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        return self._run(op.model(name, timeout))

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
            ref, metadata_json = self._run(op.described(download.verified().name, timeout))
            return download.commit(ref, metadata_json)
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
        checks, with the files' OHLCV shape, before it keeps anything. No deadline: it lasts
        as long as the transfer."""
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
        return self._run(op.list_datasets(timeout))

    def get_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        """A dataset's latest version, or one version as ``name@sha256``."""
        return self._run(op.get_dataset(name, timeout))

    def delete_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        """Delete every version of a dataset; returns the latest as it was."""
        return self._run(op.delete_dataset(name, timeout))

    # -- plumbing ------------------------------------------------------------------------------

    def _run(self, operation: op.Operation[_T]) -> _T:
        """Make the operation's calls in turn, each with its deadline; return its result."""
        try:
            call = next(operation)
            while True:
                call = operation.send(self._call(call))
        except StopIteration as done:
            result: _T = done.value
            return result

    def _call(self, call: op.Unary) -> Message:
        method: grpc.UnaryUnaryMultiCallable[Any, Message] = getattr(self._stub, call.method)
        timeout = self.timeout if call.timeout is None else call.timeout
        try:
            return method(call.request, timeout=timeout)
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
