"""Best configurations over gRPC: a trainer stores one under its job's upload token, a user
lists, shows and downloads it, and the bytes downloaded are the bytes sent (same sha256). Bad
names, wrong tokens and an orchestrator that is down get the status a client can act on."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.orchestrator.configurations import ConfigurationRepository
from services.orchestrator.jobs import JobBook
from services.orchestrator.repository import ModelRepository
from services.orchestrator.servicer_configurations import CHUNK_BYTES, ConfigurationRpcs
from services.orchestrator.upload import ModelUploadServicer
from services.trainer.configuration_upload import store_configuration
from services.trainer.uploader import UploadError
from shared.cancellation import CancellationToken, CancelledError
from shared.job_requests import JobRequest, OptimizationRequest
from shared.jobs import EventKind, JobEvent, JobState
from shared.optimize import ParamRange
from shared.results import OptimizationSummary
from shared.rpc import plumbing, serde_results
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, upload_pb2, upload_pb2_grpc
from shared.runs.optimize import configuration_json, configuration_sha256
from shared.spec import TrainingRequest, default_strategy
from tests.integration.test_bad_input import field_violations
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(60)
TOKEN = "cluster-secret"
SECURITY = plumbing.Security(token=TOKEN)
TRAINING = TrainingRequest(symbols=("GOOG",), timeframes=("1d",), strategy=default_strategy())


def optimization(symbols: tuple[str, ...] = ("GOOG",)) -> OptimizationRequest:
    return OptimizationRequest(
        symbols=symbols,
        timeframes=("1d",),
        strategy="sma_cross",
        space=(ParamRange(name="fast", type="int", low=5, high=20),),
    )


JOB_REQUEST = optimization()


class Orchestrator(ConfigurationRpcs, orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(self, configurations: ConfigurationRepository | None) -> None:
        self._configurations = configurations


@dataclass
class Server:
    address: str
    book: JobBook
    repository: ConfigurationRepository
    orchestrator: orchestrator_pb2_grpc.OrchestratorAsyncStub
    upload: upload_pb2_grpc.ModelUploadAsyncStub

    def new_job(self, request: JobRequest = JOB_REQUEST) -> tuple[str, str]:
        record, _ = self.book.create(request)
        return record.job_id, record.upload_token


async def start(
    root: Path, *, stores: bool = True, port: int = 0
) -> tuple[grpc.aio.Server, JobBook, ConfigurationRepository, str]:
    book = JobBook()
    repository = ConfigurationRepository(root / "configurations")
    server = plumbing.create_server(SECURITY)
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(
        # The generated base serves every other RPC as UNIMPLEMENTED; only its stubs'
        # typing calls them abstract.
        Orchestrator(repository if stores else None),  # type: ignore[abstract]
        server,
    )
    uploads = ModelUploadServicer(
        book,
        ModelRepository(root / "models"),
        staging=root / "staging",
        max_bytes=1024 * 1024,
        configurations=repository if stores else None,
    )
    upload_pb2_grpc.add_ModelUploadServicer_to_server(uploads, server)
    bound = plumbing.bind(server, f"127.0.0.1:{port}")
    await server.start()
    return server, book, repository, f"127.0.0.1:{bound}"


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[Server]:
    server, book, repository, address = await start(tmp_path)
    channel = plumbing.create_channel(address, SECURITY)
    try:
        yield Server(
            address,
            book,
            repository,
            orchestrator_pb2_grpc.OrchestratorStub(channel),
            upload_pb2_grpc.ModelUploadStub(channel),
        )
    finally:
        await channel.close(None)
        await server.stop(0)
        book.close()


def configuration(
    fast: int = 10, symbols: tuple[str, ...] = ("GOOG",), oos: float = 0.91
) -> tuple[str, str]:
    """A best configuration as the optimization job writes it, and its sha256."""
    request = optimization(symbols)
    summary = OptimizationSummary(
        strategy="sma_cross",
        best_params={"fast": str(fast), "slow": "30"},
        best_score=1.85,
        sampler="tpe",
        in_sample={"Sharpe Ratio": 1.85, "Return [%]": 42.0},
        out_of_sample={"Sharpe Ratio": oos},
        seed=7,
    )
    text = configuration_json(request, summary)
    return text, configuration_sha256(text)


def upload(job_id: str, token: str, text: str, sha256: str) -> upload_pb2.ConfigurationUpload:
    return upload_pb2.ConfigurationUpload(
        job_id=job_id, token=token, configuration_json=text, sha256=sha256
    )


async def download(srv: Server, name: str) -> tuple[opb.ConfigurationChunk, bytes]:
    header: opb.ConfigurationChunk | None = None
    data = b""
    async for chunk in srv.orchestrator.DownloadConfiguration(
        opb.GetConfigurationRequest(name=name)
    ):
        if header is None:
            assert chunk.HasField("header"), "the first message is the header"
            header = chunk
        else:
            assert chunk.WhichOneof("kind") == "data"
            data += chunk.data
    assert header is not None
    return header, data


async def test_upload_list_get_download_round_trip(srv: Server) -> None:
    job_id, token = srv.new_job()
    text, sha256 = configuration()
    stored = await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    assert (stored.name, stored.version, stored.sha256) == ("sma_cross/GOOG_1d_v1", 1, sha256)
    assert dict(stored.params) == {"fast": "10", "slow": "30"}
    assert stored.objective == "Sharpe Ratio"
    assert (stored.in_sample_score, stored.out_of_sample_score) == (1.85, 0.91)
    assert stored.job_id == job_id and stored.size_bytes == len(text.encode())

    again = await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    assert again == stored  # a retry stores nothing new

    listed = await srv.orchestrator.ListConfigurations(opb.ListConfigurationsRequest())
    assert list(listed.configurations) == [stored] and listed.next_page_token == ""

    for name in ("sma_cross/GOOG_1d_v1", "sma_cross/GOOG_1d", "sma_cross/GOOG_1d_latest"):
        shown = await srv.orchestrator.GetConfiguration(opb.GetConfigurationRequest(name=name))
        assert shown.ref == stored
        assert shown.configuration_json == text
        header, data = await download(srv, name)
        assert header.header == stored
        assert hashlib.sha256(data).hexdigest() == header.header.sha256 == sha256
        assert json.loads(data)["params"] == {"fast": "10", "slow": "30"}


async def test_versions_paging_and_strategy_filter(srv: Server) -> None:
    names = []
    for fast in (8, 9, 10):
        job_id, token = srv.new_job()
        text, sha256 = configuration(fast)
        names.append(
            (await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))).name
        )
    job_id, token = srv.new_job(optimization(("EURUSD",)))
    text, sha256 = configuration(symbols=("EURUSD",), oos=math.nan)
    eurusd = await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    assert math.isnan(eurusd.out_of_sample_score)  # no walk-forward score: null in the JSON
    assert names == [f"sma_cross/GOOG_1d_v{n}" for n in (1, 2, 3)]

    seen = []
    token_ = ""
    while True:
        page = await srv.orchestrator.ListConfigurations(
            opb.ListConfigurationsRequest(page_size=3, page_token=token_)
        )
        seen += [c.name for c in page.configurations]
        token_ = page.next_page_token
        if not token_:
            break
    assert seen == ["sma_cross/EURUSD_1d_v1", *names]

    latest = await srv.orchestrator.GetConfiguration(
        opb.GetConfigurationRequest(name="sma_cross/GOOG_1d")
    )
    assert latest.ref.version == 3 and dict(latest.ref.params)["fast"] == "10"
    none = await srv.orchestrator.ListConfigurations(
        opb.ListConfigurationsRequest(strategy="rsi_reversion")
    )
    assert list(none.configurations) == []


async def test_download_streams_in_chunks(srv: Server) -> None:
    job_id, token = srv.new_job()
    big = json.loads(configuration()[0])
    big["notes"] = "x" * (CHUNK_BYTES * 2 + 10)  # an unknown key is kept as sent
    text = json.dumps(big, indent=2, sort_keys=True)
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    chunks = [
        c
        async for c in srv.orchestrator.DownloadConfiguration(
            opb.GetConfigurationRequest(name="sma_cross/GOOG_1d_v1")
        )
    ]
    assert len(chunks) == 4  # header, then three pieces of at most CHUNK_BYTES
    data = b"".join(c.data for c in chunks[1:])
    assert data == text.encode() and hashlib.sha256(data).hexdigest() == sha256


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../configurations/sma_cross/GOOG_1d_v1", grpc.StatusCode.INVALID_ARGUMENT),
        ("sma_cross/../../etc", grpc.StatusCode.INVALID_ARGUMENT),
        ("sma_cross", grpc.StatusCode.INVALID_ARGUMENT),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("sma_cross/GOOG_1d_v9", grpc.StatusCode.NOT_FOUND),
        ("rsi_reversion/GOOG_1d", grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_bad_names(srv: Server, name: str, code: grpc.StatusCode) -> None:
    job_id, token = srv.new_job()
    await srv.upload.UploadConfiguration(upload(job_id, token, *configuration()))
    request = opb.GetConfigurationRequest(name=name)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.orchestrator.GetConfiguration(request)
    assert got.value.code() == code and field_violations(got.value) == ["name"]
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        await download(srv, name)
    assert streamed.value.code() == code


async def test_bad_list_requests(srv: Server) -> None:
    for request, field in (
        (opb.ListConfigurationsRequest(strategy="../x"), "strategy"),
        (opb.ListConfigurationsRequest(page_token="garbage!"), "page_token"),
        (opb.ListConfigurationsRequest(page_size=-1), "page_size"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await srv.orchestrator.ListConfigurations(request)
        assert got.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(got.value) == [field]


async def test_refused_uploads_store_nothing(srv: Server) -> None:
    job_id, token = srv.new_job()
    text, sha256 = configuration()
    cases = [
        (upload(job_id, "wrong", text, sha256), grpc.StatusCode.PERMISSION_DENIED, "upload_token"),
        (upload("no-such-job", token, text, sha256), grpc.StatusCode.NOT_FOUND, "job_id"),
        (upload("../etc", token, text, sha256), grpc.StatusCode.INVALID_ARGUMENT, "job_id"),
        (upload(job_id, token, text + " ", sha256), grpc.StatusCode.DATA_LOSS, "sha256"),
        (
            upload(job_id, token, text.replace("trainwire.configuration", "x"), sha256),
            grpc.StatusCode.DATA_LOSS,
            "sha256",
        ),
        (
            upload(job_id, token, "{}", configuration_sha256("{}")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "configuration_json.kind",
        ),
    ]
    for request, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await srv.upload.UploadConfiguration(request)
        assert got.value.code() == code, got.value.details()
        assert field_violations(got.value) == [field]
    assert srv.repository.catalogue() == []

    await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    other, other_sha = configuration(fast=11)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.upload.UploadConfiguration(upload(job_id, token, other, other_sha))
    assert got.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert [r.version for r in srv.repository.catalogue()] == [1]


async def test_only_the_optimization_it_ran(srv: Server) -> None:
    train_job, train_token = srv.new_job(TRAINING)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.upload.UploadConfiguration(upload(train_job, train_token, *configuration()))
    assert got.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only an optimization job" in (got.value.details() or "")

    job_id, token = srv.new_job()  # optimized GOOG
    text, sha256 = configuration(symbols=("EURUSD",))
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.upload.UploadConfiguration(upload(job_id, token, text, sha256))
    assert got.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(got.value) == ["configuration_json.symbols"]
    assert srv.repository.catalogue() == []


async def test_a_finished_job_takes_no_configuration(srv: Server) -> None:
    job_id, token = srv.new_job()
    srv.book.append(
        job_id,
        JobEvent(
            job_id=job_id,
            seq=0,
            time=time.time(),
            state=JobState.CANCELLED,
            kind=EventKind.LIFECYCLE,
            message="Cancelled: by the test",
        ),
    )
    await srv.book.flushed()
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.upload.UploadConfiguration(upload(job_id, token, *configuration()))
    assert got.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "takes no configuration" in (got.value.details() or "")


async def test_without_the_cluster_token_is_unauthenticated(srv: Server) -> None:
    job_id, token = srv.new_job()
    async with plumbing.create_channel(srv.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await upload_pb2_grpc.ModelUploadStub(channel).UploadConfiguration(
                upload(job_id, token, *configuration())
            )
        assert got.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as listed:
            await orchestrator_pb2_grpc.OrchestratorStub(channel).ListConfigurations(
                opb.ListConfigurationsRequest()
            )
        assert listed.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_optimization_job_takes_no_model(srv: Server) -> None:
    job_id, token = srv.new_job()

    async def chunks() -> AsyncIterator[upload_pb2.ModelChunk]:
        yield upload_pb2.ModelChunk(
            header=upload_pb2.UploadHeader(
                job_id=job_id,
                upload_token=token,
                sha256="0" * 64,
                size_bytes=1,
                compression="gzip",
            )
        )

    with pytest.raises(grpc.aio.AioRpcError) as got:
        await srv.upload.UploadModel(chunks())
    assert got.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "optimize job; it takes no model" in (got.value.details() or "")


async def test_an_orchestrator_without_a_repository(tmp_path: Path) -> None:
    server, book, _, address = await start(tmp_path, stores=False)
    try:
        record, _ = book.create(JOB_REQUEST)
        async with plumbing.create_channel(address, SECURITY) as channel:
            calls: list[Awaitable[Any]] = [
                upload_pb2_grpc.ModelUploadStub(channel).UploadConfiguration(
                    upload(record.job_id, record.upload_token, *configuration())
                ),
                orchestrator_pb2_grpc.OrchestratorStub(channel).ListConfigurations(
                    opb.ListConfigurationsRequest()
                ),
                orchestrator_pb2_grpc.OrchestratorStub(channel).GetConfiguration(
                    opb.GetConfigurationRequest(name="sma_cross/GOOG_1d")
                ),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as got:
                    await call
                assert got.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert "stores no configurations" in (got.value.details() or "")
    finally:
        await server.stop(0)
        book.close()


# -- the trainer's side ------------------------------------------------------------------------


async def test_store_configuration_stores_and_retries_idempotently(srv: Server) -> None:
    job_id, token = srv.new_job()
    text, sha256 = configuration()
    ref = await store_configuration(
        target=srv.address,
        job_id=job_id,
        token=token,
        text=text,
        sha256=sha256,
        security=SECURITY,
    )
    assert ref == serde_results.configuration_from_proto(
        (await srv.orchestrator.GetConfiguration(opb.GetConfigurationRequest(name=ref.name))).ref
    )
    assert ref.name == "sma_cross/GOOG_1d_v1" and ref.params == {"fast": "10", "slow": "30"}
    again = await store_configuration(
        target=srv.address,
        job_id=job_id,
        token=token,
        text=text,
        sha256=sha256,
        security=SECURITY,
    )
    assert again == ref and len(srv.repository.catalogue()) == 1


async def test_store_configuration_refusals_are_not_retried(srv: Server) -> None:
    job_id, token = srv.new_job()
    text, sha256 = configuration()
    for given_token, given_sha, security, code in (
        ("wrong", sha256, SECURITY, grpc.StatusCode.PERMISSION_DENIED),
        (token, "0" * 64, SECURITY, grpc.StatusCode.DATA_LOSS),
        (token, sha256, plumbing.INSECURE, grpc.StatusCode.UNAUTHENTICATED),
    ):
        started = time.monotonic()
        with pytest.raises(UploadError) as got:
            await store_configuration(
                target=srv.address,
                job_id=job_id,
                token=given_token,
                text=text,
                sha256=given_sha,
                security=security,
                backoff_s=5.0,
            )
        assert got.value.code == code
        assert "1 attempt(s)" in str(got.value)
        assert time.monotonic() - started < 4.0  # no backoff waited
    assert srv.repository.catalogue() == []


async def test_store_configuration_gives_up_when_nothing_answers() -> None:
    port = free_port()  # nothing listens there
    text, sha256 = configuration()
    with pytest.raises(UploadError) as got:
        await store_configuration(
            target=f"127.0.0.1:{port}",
            job_id="job-1",
            token="t",
            text=text,
            sha256=sha256,
            security=SECURITY,
            attempts=3,
            backoff_s=0.01,
        )
    assert got.value.code == grpc.StatusCode.UNAVAILABLE
    assert "3 attempt(s)" in str(got.value)


async def test_store_configuration_waits_for_the_orchestrator_then_stores(
    tmp_path: Path,
) -> None:
    """Retries UNAVAILABLE within its window until the orchestrator is up (its restart),
    then stores."""
    port = free_port()
    text, sha256 = configuration()
    book = JobBook()
    record, _ = book.create(JOB_REQUEST)

    async def serve_later() -> grpc.aio.Server:
        await asyncio.sleep(0.5)
        server = plumbing.create_server(SECURITY)
        uploads = ModelUploadServicer(
            book,
            ModelRepository(tmp_path / "models"),
            staging=tmp_path / "staging",
            max_bytes=1024,
            configurations=ConfigurationRepository(tmp_path / "configurations"),
        )
        upload_pb2_grpc.add_ModelUploadServicer_to_server(uploads, server)
        plumbing.bind(server, f"127.0.0.1:{port}")
        await server.start()
        return server

    later = asyncio.ensure_future(serve_later())
    try:
        ref = await store_configuration(
            target=f"127.0.0.1:{port}",
            job_id=record.job_id,
            token=record.upload_token,
            text=text,
            sha256=sha256,
            security=SECURITY,
            attempts=2,  # run out long before the server is up: the window carries on
            backoff_s=0.05,
            max_backoff_s=0.1,
            unavailable_window_s=20.0,
        )
        assert ref.job_id == record.job_id and ref.sha256 == sha256
    finally:
        await (await later).stop(0)
        book.close()


async def test_store_configuration_stops_on_cancel() -> None:
    port = free_port()
    cancel = CancellationToken()
    text, sha256 = configuration()
    asyncio.get_running_loop().call_later(0.3, cancel.cancel, "job cancelled")
    started = time.monotonic()
    with pytest.raises(CancelledError):
        await store_configuration(
            target=f"127.0.0.1:{port}",
            job_id="job-1",
            token="t",
            text=text,
            sha256=sha256,
            security=SECURITY,
            attempts=100,
            backoff_s=2.0,
            cancel=cancel,
        )
    assert time.monotonic() - started < 2.0
