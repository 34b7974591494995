"""Datasets on the orchestrator: real market files go in once, by content; bad uploads get a
precise status naming what to fix and leave nothing behind."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtesting  # type: ignore[import-untyped]
import grpc
import pytest

from services.orchestrator import datasets
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from shared.datasets import manifest_sha256
from shared.rpc import plumbing
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import strategy_pb2 as spb
from tests.integration.test_bad_input import field_violations

pytestmark = pytest.mark.timeout(60)
REAL = Path(backtesting.__file__).parent / "test"
GOOG = (REAL / "GOOG.csv").read_bytes()
EURUSD = (REAL / "EURUSD.csv").read_bytes()


@dataclass
class Orchestrator:
    server: OrchestratorServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    root: Path

    @property
    def datasets(self) -> Path:
        return self.root / "state" / "datasets"

    def stored(self) -> list[str]:
        """Every file under datasets/ but the (empty) folders: what an upload left behind."""
        return sorted(
            str(p.relative_to(self.datasets)) for p in self.datasets.rglob("*") if p.is_file()
        )


@pytest.fixture
async def orch(tmp_path: Path) -> AsyncIterator[Orchestrator]:
    server = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            state_dir=tmp_path / "state",
            max_dataset_file_bytes=1024 * 1024,
            max_dataset_bytes=1536 * 1024,
        )
    )
    channel = plumbing.create_channel(server.address)
    try:
        yield Orchestrator(server, orchestrator_pb2_grpc.OrchestratorStub(channel), tmp_path)
    finally:
        await channel.close(None)
        await server.stop(0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_header(
    filename: str, data: bytes, *, compression: str = "", **fields: object
) -> dpb.DatasetChunk:
    header = dpb.DatasetFileHeader(
        filename=filename, size_bytes=len(data), sha256=sha(data), compression=compression
    )
    for key, value in fields.items():
        setattr(header, key, value)
    return dpb.DatasetChunk(file=header)


def chunks(data: bytes, size: int = 64 * 1024) -> list[dpb.DatasetChunk]:
    return [dpb.DatasetChunk(data=data[i : i + size]) for i in range(0, len(data), size)]


def upload(name: str, files: dict[str, bytes], *, gzipped: bool = False) -> list[dpb.DatasetChunk]:
    messages = [dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name=name))]
    for filename, data in files.items():
        body = gzip.compress(data) if gzipped else data
        messages.append(file_header(filename, data, compression="gzip" if gzipped else ""))
        messages += chunks(body)
    return messages


async def stream(messages: Iterable[dpb.DatasetChunk]) -> AsyncIterator[dpb.DatasetChunk]:
    for message in messages:
        yield message


async def refused(
    orch: Orchestrator, messages: Iterable[dpb.DatasetChunk], code: grpc.StatusCode, field: str
) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.UploadDataset(stream(messages))
    assert err.value.code() == code, err.value.details()
    assert field_violations(err.value) == [field], err.value.details()
    assert orch.stored() == [], "a refused upload left files behind"
    return err.value.details() or ""


# -- what a user gets ------------------------------------------------------------------------


async def test_a_real_daily_file_is_stored_by_content_with_what_it_holds(
    orch: Orchestrator,
) -> None:
    dataset = await orch.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
    assert dataset.name == "goog"
    assert dataset.sha256 == manifest_sha256([("GOOG.csv", sha(GOOG))])
    [file] = dataset.files
    assert (file.filename, file.symbol, file.timeframe) == ("GOOG.csv", "GOOG", "1d")
    assert file.sha256 == sha(GOOG)
    assert file.size_bytes == dataset.size_bytes == len(GOOG)
    assert file.rows == GOOG.count(b"\n") - 1  # a header line, then one line per bar
    assert file.start.ToDatetime().date().isoformat() == "2004-08-19"
    assert file.end.ToDatetime().year == 2013
    assert (orch.datasets / "blobs" / sha(GOOG)).read_bytes() == GOOG

    assert await orch.stub.GetDataset(dpb.GetDatasetRequest(name="goog")) == dataset
    pinned = await orch.stub.GetDataset(dpb.GetDatasetRequest(name=f"goog@{dataset.sha256}"))
    assert pinned == dataset
    listed = await orch.stub.ListDatasets(dpb.ListDatasetsRequest())
    assert list(listed.datasets) == [dataset]

    download = orch.stub.DownloadDatasetFile(dpb.DownloadDatasetFileRequest(sha256=sha(GOOG)))
    messages = [m async for m in download]
    assert messages[0].file.size_bytes == len(GOOG)
    assert b"".join(m.data for m in messages[1:]) == GOOG


async def test_a_gzipped_hourly_file_is_inflated_and_its_timeframe_read_from_its_name(
    orch: Orchestrator,
) -> None:
    dataset = await orch.stub.UploadDataset(
        stream(upload("fx", {"EURUSD_1h.csv": EURUSD}, gzipped=True))
    )
    [file] = dataset.files
    assert (file.symbol, file.timeframe, file.size_bytes) == ("EURUSD", "1h", len(EURUSD))
    assert (orch.datasets / "blobs" / sha(EURUSD)).read_bytes() == EURUSD


async def test_a_new_upload_is_a_new_version_and_the_old_one_stays_reachable(
    orch: Orchestrator,
) -> None:
    first = await orch.stub.UploadDataset(stream(upload("mix", {"GOOG.csv": GOOG})))
    again = await orch.stub.UploadDataset(stream(upload("mix", {"GOOG.csv": GOOG})))
    assert again == first  # the same files under the same names: the same version
    second = await orch.stub.UploadDataset(
        stream(upload("mix", {"GOOG.csv": GOOG, "EURUSD.csv": EURUSD}))
    )
    assert second.sha256 != first.sha256
    assert [f.filename for f in second.files] == ["EURUSD.csv", "GOOG.csv"]
    latest = await orch.stub.GetDataset(dpb.GetDatasetRequest(name="mix"))
    assert latest.sha256 == second.sha256
    old = await orch.stub.GetDataset(dpb.GetDatasetRequest(name=f"mix@{first.sha256}"))
    assert old == first
    assert len(list((orch.datasets / "blobs").iterdir())) == 2  # GOOG's bytes stored once


async def test_delete_removes_every_version_and_only_the_files_nobody_else_lists(
    orch: Orchestrator,
) -> None:
    await orch.stub.UploadDataset(stream(upload("a", {"GOOG.csv": GOOG})))
    await orch.stub.UploadDataset(stream(upload("a", {"GOOG.csv": GOOG, "EURUSD.csv": EURUSD})))
    await orch.stub.UploadDataset(stream(upload("b", {"GOOG.csv": GOOG})))
    deleted = await orch.stub.DeleteDataset(dpb.DeleteDatasetRequest(name="a"))
    assert deleted.name == "a" and len(deleted.files) == 2
    assert sorted(p.name for p in (orch.datasets / "blobs").iterdir()) == [sha(GOOG)]
    for name in ("a", f"a@{deleted.sha256}"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await orch.stub.GetDataset(dpb.GetDatasetRequest(name=name))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.DownloadDatasetFile(
            dpb.DownloadDatasetFileRequest(sha256=sha(EURUSD))
        ).read()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert field_violations(err.value) == ["sha256"]
    listed = await orch.stub.ListDatasets(dpb.ListDatasetsRequest())
    assert [d.name for d in listed.datasets] == ["b"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.DeleteDataset(dpb.DeleteDatasetRequest(name="a"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_datasets_pages_by_name_and_refuses_foreign_tokens(orch: Orchestrator) -> None:
    names = ["d1", "d2", "d3"]
    for name in reversed(names):
        await orch.stub.UploadDataset(stream(upload(name, {"GOOG.csv": GOOG})))
    seen, token = [], ""
    while True:
        reply = await orch.stub.ListDatasets(dpb.ListDatasetsRequest(page_size=1, page_token=token))
        seen += [d.name for d in reply.datasets]
        token = reply.next_page_token
        if not token:
            break
    assert seen == names
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.ListDatasets(dpb.ListDatasetsRequest(page_token="bm90IGEgdG9rZW4"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == ["page_token"]


async def test_submitting_a_job_on_an_unknown_dataset_is_not_found_on_data_dataset(
    orch: Orchestrator,
) -> None:
    request = spb.TrainRequest(
        symbols=["GOOG"],
        timeframes=["1d"],
        data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_DATASET, dataset="nope"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    assert field_violations(err.value) == ["data.dataset"]


async def test_a_submitted_job_is_pinned_to_the_version_it_was_submitted_against(
    orch: Orchestrator,
) -> None:
    first = await orch.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
    request = spb.TrainRequest(
        symbols=["GOOG"],
        timeframes=["1d"],
        request_id="pin-1",
        data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_DATASET, dataset="goog"),
    )
    job = await orch.stub.SubmitJob(request)
    assert job.request.data.dataset_sha256 == first.sha256
    await orch.stub.UploadDataset(stream(upload("goog", {"GOOG_1d.csv": GOOG})))
    # The same request again (a client retry) is the same job, still on the first version.
    again = await orch.stub.SubmitJob(request)
    assert again.job_id == job.job_id
    assert again.request.data.dataset_sha256 == first.sha256


async def test_an_upload_the_client_abandons_leaves_nothing_behind(
    orch: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    written, cleaned = threading.Event(), threading.Event()
    accept, discard = datasets._Incoming.accept, datasets._discard

    def accept_and_tell(self: datasets._Incoming, data: bytes) -> None:
        accept(self, data)
        written.set()

    def discard_and_tell(*args: Any) -> None:
        discard(*args)
        cleaned.set()

    monkeypatch.setattr(datasets._Incoming, "accept", accept_and_tell)
    monkeypatch.setattr(datasets, "_discard", discard_and_tell)

    async def half_then_hang() -> AsyncIterator[dpb.DatasetChunk]:
        yield dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog"))
        yield file_header("GOOG.csv", GOOG)
        yield dpb.DatasetChunk(data=GOOG[: len(GOOG) // 2])
        await asyncio.Event().wait()  # the client never sends the rest

    call = orch.stub.UploadDataset(half_then_hang())
    pending = asyncio.ensure_future(call)
    assert await asyncio.to_thread(written.wait, 10), "the first half never arrived"
    assert orch.stored(), "the first half is not on disk"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert await asyncio.to_thread(cleaned.wait, 10), "the server never cleaned up"
    assert orch.stored() == []
    listed = await orch.stub.ListDatasets(dpb.ListDatasetsRequest())
    assert list(listed.datasets) == []


# -- bad input -------------------------------------------------------------------------------


async def test_a_wrong_sha256_is_data_loss_on_file_sha256(orch: Orchestrator) -> None:
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog")),
        file_header("GOOG.csv", GOOG, sha256=sha(b"other bytes")),
        *chunks(GOOG),
    ]
    details = await refused(orch, messages, grpc.StatusCode.DATA_LOSS, "file.sha256")
    assert "GOOG.csv" in details and sha(GOOG) in details


async def test_a_stream_that_ends_before_the_declared_size_is_truncated(
    orch: Orchestrator,
) -> None:
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog")),
        file_header("GOOG.csv", GOOG),
        *chunks(GOOG[: len(GOOG) // 2]),
    ]
    details = await refused(orch, messages, grpc.StatusCode.DATA_LOSS, "data")
    assert "truncated" in details and f"of the declared {len(GOOG)}" in details


async def test_a_truncated_gzip_member_is_refused(orch: Orchestrator) -> None:
    body = gzip.compress(GOOG)
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog")),
        file_header("GOOG.csv", GOOG, compression="gzip"),
        *chunks(body[:-100]),
    ]
    details = await refused(orch, messages, grpc.StatusCode.DATA_LOSS, "data")
    assert "gzip member" in details


async def test_a_gzip_bomb_stops_at_the_declared_size(orch: Orchestrator) -> None:
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KB
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="bomb")),
        dpb.DatasetChunk(
            file=dpb.DatasetFileHeader(
                filename="X.csv", size_bytes=1000, sha256=sha(b"x"), compression="gzip"
            )
        ),
        *chunks(bomb),
    ]
    details = await refused(orch, messages, grpc.StatusCode.DATA_LOSS, "file.size_bytes")
    assert "past the declared 1000 bytes" in details


async def test_more_raw_bytes_than_declared_are_refused(orch: Orchestrator) -> None:
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog")),
        file_header("GOOG.csv", GOOG, size_bytes=100),
        *chunks(GOOG),
    ]
    await refused(orch, messages, grpc.StatusCode.DATA_LOSS, "file.size_bytes")


async def test_a_file_over_the_cap_is_resource_exhausted_before_any_byte(
    orch: Orchestrator,
) -> None:
    big = 2 * 1024 * 1024  # the fixture's cap is 1 MiB per file
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="big")),
        dpb.DatasetChunk(
            file=dpb.DatasetFileHeader(filename="BIG.csv", size_bytes=big, sha256=sha(b""))
        ),
    ]
    details = await refused(orch, messages, grpc.StatusCode.RESOURCE_EXHAUSTED, "file.size_bytes")
    assert "at most 1048576" in details


async def test_files_adding_up_past_the_dataset_cap_are_resource_exhausted(
    orch: Orchestrator,
) -> None:
    part = b"x" * (800 * 1024)  # two of these pass the fixture's 1.5 MiB per dataset
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="big")),
        file_header("A.csv", part),
        *chunks(part),
        file_header("B.csv", part),
    ]
    await refused(orch, messages, grpc.StatusCode.RESOURCE_EXHAUSTED, "file.size_bytes")


@pytest.mark.parametrize(
    "name", ["", "../etc", "a/b", ".", "..", "x" * 65, "naïve", "two words", "a\x00b"]
)
async def test_a_bad_dataset_name_is_invalid_argument_on_header_name(
    orch: Orchestrator, name: str
) -> None:
    await refused(
        orch, upload(name, {"GOOG.csv": GOOG}), grpc.StatusCode.INVALID_ARGUMENT, "header.name"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "../GOOG.csv",
        "dir/GOOG.csv",
        ".GOOG.csv",
        "GOOG.txt",
        "GOOG",
        "GOOG.csv.gz",
        "-GOOG.csv",
        "G" * 130 + ".csv",
        "GOOG\\x.csv",
        "ЕURUSD.csv",
        "A" * 40 + ".csv",  # a symbol no request can name (over 32 characters)
    ],
)
async def test_a_bad_filename_is_invalid_argument_on_file_filename(
    orch: Orchestrator, filename: str
) -> None:
    await refused(
        orch, upload("goog", {filename: GOOG}), grpc.StatusCode.INVALID_ARGUMENT, "file.filename"
    )


async def test_a_file_sent_twice_is_invalid_argument(orch: Orchestrator) -> None:
    messages = [
        dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog")),
        file_header("GOOG.csv", GOOG),
        *chunks(GOOG),
        file_header("GOOG.csv", GOOG),
        *chunks(GOOG),
    ]
    details = await refused(orch, messages, grpc.StatusCode.INVALID_ARGUMENT, "file.filename")
    assert "twice" in details


async def test_two_files_of_one_series_are_invalid_argument(orch: Orchestrator) -> None:
    details = await refused(
        orch,
        upload("goog", {"GOOG.csv": GOOG, "GOOG_1d.csv": GOOG}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "file.filename",
    )
    assert "GOOG 1d" in details


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"just,some\nwords,here\n", "missing column"),
        (b"date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1,2,0.5,1.5\n", "volume"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "OHLCV"),
        (GOOG.replace(b"2004-08-20,101.01", b"2004-08-20,-101.01"), "non-positive"),
    ],
)
async def test_a_file_that_is_not_ohlcv_is_invalid_argument_on_data(
    orch: Orchestrator, content: bytes, problem: str
) -> None:
    details = await refused(
        orch, upload("junk", {"JUNK_1d.csv": content}), grpc.StatusCode.INVALID_ARGUMENT, "data"
    )
    assert "JUNK_1d.csv" in details and problem in details


async def test_a_broken_stream_shape_is_invalid_argument_naming_the_part(
    orch: Orchestrator,
) -> None:
    header = dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog"))
    cases: list[tuple[list[dpb.DatasetChunk], str]] = [
        ([], "header"),
        ([file_header("GOOG.csv", GOOG), *chunks(GOOG)], "header"),
        ([header], "file"),
        ([header, *chunks(GOOG)], "data"),
        ([header, header], "header"),
        ([header, file_header("GOOG.csv", GOOG, sha256="ABC")], "file.sha256"),
        ([header, file_header("GOOG.csv", GOOG, size_bytes=0)], "file.size_bytes"),
        ([header, file_header("GOOG.csv", GOOG, compression="zstd")], "file.compression"),
    ]
    for messages, field in cases:
        await refused(orch, messages, grpc.StatusCode.INVALID_ARGUMENT, field)


@pytest.mark.parametrize(
    ("name", "field"),
    [("../x", "name"), ("goog@123", "name"), ("goog@", "name"), ("x" * 100, "name")],
)
async def test_get_dataset_names_the_field_for_a_bad_name(
    orch: Orchestrator, name: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.GetDataset(dpb.GetDatasetRequest(name=name))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == [field]


async def test_download_of_a_malformed_hash_is_invalid_argument(orch: Orchestrator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await orch.stub.DownloadDatasetFile(
            dpb.DownloadDatasetFileRequest(sha256="../../jobs.sqlite3")
        ).read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == ["sha256"]
