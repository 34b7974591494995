"""The HTTP API (``--http-listen``) against a real in-process orchestrator, over real HTTP.

Replies are compared with the gRPC API's own replies in the proto JSON mapping: the two must
say the same thing. Jobs are driven through the orchestrator's job book (as the trainer relay
does) where a trainer would only slow the test; one test trains a real model end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import json_format

from services.orchestrator import http_sse
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.jobs import EventKind, JobError, JobEvent, JobState
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import TrainingRequest, default_strategy
from tests.support.certs import Certs, make_certs

pytestmark = pytest.mark.timeout(120)
TOKEN = "http-s3cret"
REQUEST = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())


@dataclass
class Api:
    orchestrator: OrchestratorServer
    url: str
    session: aiohttp.ClientSession
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(self.url + path, **kwargs) as resp:
            return resp.status, await _body(resp)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(self.url + path, **kwargs) as resp:
            return resp.status, await _body(resp)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    if resp.content_type == "application/json":
        return json.loads(text)
    return text


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """An orchestrator with no trainer: jobs stay where the test puts them."""
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0", http_listen="127.0.0.1:0", state_dir=tmp_path / "state"
        )
    )
    assert orchestrator.http is not None
    channel = plumbing.create_channel(orchestrator.address)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(
                orchestrator,
                orchestrator.http.url.rstrip("/"),
                session,
                orchestrator_pb2_grpc.OrchestratorStub(channel),
            )
    finally:
        await channel.close(None)
        await orchestrator.stop(0)


def _event(state: JobState, kind: EventKind, percentage: float, message: str) -> JobEvent:
    return JobEvent(
        job_id="",
        seq=0,
        time=time.time(),
        state=state,
        kind=kind,
        percentage=percentage,
        message=message,
        epoch=1,
        total_epochs=3,
        metrics={"loss": 0.5, "accuracy": 0.6},
    )


def _running(api: Api, n: int = 3) -> str:
    """A job with QUEUED and ``n`` RUNNING events (seq 1..n+1)."""
    book = api.orchestrator.book
    job_id = book.create(REQUEST)[0].job_id
    for i in range(n):
        book.append(job_id, _event(JobState.RUNNING, EventKind.EPOCH, 10.0 * (i + 1), f"e{i}"))
    return job_id


def _finish(api: Api, job_id: str) -> None:
    api.orchestrator.book.append(
        job_id,
        JobEvent(
            job_id="",
            seq=0,
            time=time.time(),
            state=JobState.CANCELLED,
            kind=EventKind.LIFECYCLE,
            message="Cancelled: test over",
            error=JobError(code="CANCELLED", message="test over", where="orchestrator"),
        ),
    )


async def _frames(resp: aiohttp.ClientResponse, until_seq: int = 0) -> list[dict[str, str]]:
    """SSE frames (field -> value) until the stream ends, or a frame with id ``until_seq``."""
    frames: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if frame:
                frames.append(frame)
                if until_seq and frame.get("id") == str(until_seq):
                    return frames
            frame = {}
        elif line.startswith(":"):
            frame.setdefault("comment", line[1:].strip())
        else:
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")
    return frames


def _seqs(frames: list[dict[str, str]]) -> list[int]:
    return [int(f["id"]) for f in frames if "id" in f]


# -- jobs ----------------------------------------------------------------------------------------


async def test_jobs_list_and_get_say_what_grpc_says_with_the_same_page_tokens(api: Api) -> None:
    ids = [_running(api, 1) for _ in range(5)]
    status, page1 = await api.get("/api/v1/jobs", params={"page_size": "2"})
    assert status == 200
    grpc_page1 = json_format.MessageToDict(
        await api.stub.ListJobs(opb.ListJobsRequest(page_size=2))
    )
    assert page1 == grpc_page1
    assert [j["jobId"] for j in page1["jobs"]] == ids[::-1][:2]  # newest first
    token = page1["nextPageToken"]
    status, page2 = await api.get("/api/v1/jobs", params={"page_size": "2", "page_token": token})
    grpc_page2 = await api.stub.ListJobs(opb.ListJobsRequest(page_size=2, page_token=token))
    assert status == 200 and page2 == json_format.MessageToDict(grpc_page2)
    assert [j["jobId"] for j in page2["jobs"]] == ids[::-1][2:4]

    status, summary = await api.get("/api/v1/jobs", params={"page_size": "2", "view": "summary"})
    assert status == 200 and summary["nextPageToken"] == token
    for short, full in zip(summary["jobs"], page1["jobs"], strict=True):
        assert "request" in full and short == {k: v for k, v in full.items() if k != "request"}
    status, body = await api.get("/api/v1/jobs", params={"view": "brief"})
    assert status == 400 and body["field"] == "view"

    status, job = await api.get(f"/api/v1/jobs/{ids[0]}")
    grpc_job = await api.stub.GetJob(opb.GetJobRequest(job_id=ids[0]))
    assert status == 200 and job == json_format.MessageToDict(grpc_job)
    assert job["state"] == "JOB_STATE_RUNNING" and job["percentage"] == 10.0
    assert job["lastSeq"] == "2"  # int64 as a string, as the proto JSON mapping says


async def test_state_filter_takes_short_long_repeated_and_comma_forms(api: Api) -> None:
    running = _running(api)
    queued = api.orchestrator.book.create(REQUEST)[0].job_id
    done = _running(api)
    _finish(api, done)

    async def ids(query: str) -> set[str]:
        status, body = await api.get(f"/api/v1/jobs?{query}")
        assert status == 200, body
        return {j["jobId"] for j in body.get("jobs", [])}

    assert await ids("state=RUNNING") == {running}
    assert await ids("state=running&state=JOB_STATE_QUEUED") == {running, queued}
    assert await ids("state=QUEUED,CANCELLED") == {queued, done}
    assert await ids("") == {running, queued, done}
    status, body = await api.get("/api/v1/jobs?state=DONE")
    assert status == 400 and body["code"] == "INVALID_ARGUMENT" and body["field"] == "state"
    assert "'DONE' is not a job state" in body["message"] and "SUCCEEDED" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/api/v1/jobs/not-a-job-id!", None, 400, "job_id"),
        ("GET", "/api/v1/jobs/0123456789abcdef", None, 404, "job_id"),
        ("GET", "/api/v1/jobs?page_token=garbage!", None, 400, "page_token"),
        ("GET", "/api/v1/jobs?page_token=WyJtb2RlbHMiLCJhIiwiYiIsMV0", None, 400, "page_token"),
        ("GET", "/api/v1/jobs?page_size=lots", None, 400, "page_size"),
        ("GET", "/api/v1/jobs?page_size=-3", None, 400, "page_size"),
        ("GET", "/api/v1/jobs?page_size=99999999999", None, 400, "page_size"),
        ("GET", "/api/v1/jobs?sort=age", None, 400, "sort"),
        ("GET", "/api/v1/jobs/0123456789abcdef/events?after_seq=x", None, 400, "after_seq"),
        ("GET", "/api/v1/jobs/0123456789abcdef/events", None, 404, "job_id"),
        ("GET", "/api/v1/models/no-slash", None, 400, "name"),
        ("GET", "/api/v1/models/a/b_v1", None, 404, "name"),
        ("GET", "/api/v1/models/a/b_v1/download", None, 404, "name"),
        ("GET", "/api/v1/models?strategy=bad%20name", None, 400, "strategy"),
        ("POST", "/api/v1/jobs/0123456789abcdef/cancel", None, 404, "job_id"),
        ("POST", "/api/v1/jobs/bad!/cancel", b'{"reason":"x"}', 400, "job_id"),
        ("GET", "/api/v1/nowhere", None, 404, ""),
        ("DELETE", "/api/v1/jobs", None, 405, ""),
    ],
)
async def test_bad_input_is_a_precise_4xx_never_a_500(
    api: Api, method: str, path: str, body: bytes | None, status: int, field: str
) -> None:
    async with api.session.request(method, api.url + path, data=body) as resp:
        got = await resp.json()
        assert resp.status == status, got
    assert got["code"] and got["message"]
    if field:
        assert got["field"] == field, got
        assert got["message"].startswith(f"{field}: "), got  # gRPC's status message


async def test_cancel_body_is_checked_and_the_reason_reaches_the_job(api: Api) -> None:
    job_id = api.orchestrator.book.create(REQUEST)[0].job_id
    url = f"/api/v1/jobs/{job_id}/cancel"
    for bad, field in (
        (b"{not json", "body"),
        (b'["enough"]', "body"),
        (b'{"reason": 3}', "reason"),
        (b'{"why": "x"}', "body"),
        (json.dumps({"reason": "x" * 2000}).encode(), "reason"),
    ):
        status, body = await api.post(url, data=bad)
        assert status == 400 and body["field"] == field, body
    status, body = await api.post(url, data=b"x" * 100_000)
    assert status == 413 and body["code"] == "RESOURCE_EXHAUSTED"
    status, body = await api.post(url, json={"reason": "enough for today"})
    assert status == 200 and body["state"] == "JOB_STATE_CANCELLED"
    assert body["error"]["message"] == "enough for today"
    status, again = await api.post(url)  # no body: cancelling a finished job changes nothing
    assert status == 200 and again["lastSeq"] == body["lastSeq"]


# -- events (SSE) --------------------------------------------------------------------------------


async def test_events_stream_every_event_once_in_order_and_end_after_the_terminal(
    api: Api,
) -> None:
    job_id = _running(api, 3)
    url = f"{api.url}/api/v1/jobs/{job_id}/events"
    async with api.session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        first = await _frames(resp, until_seq=4)
        for i in range(3):
            api.orchestrator.book.append(
                job_id, _event(JobState.RUNNING, EventKind.BATCH, 50.0 + i, f"live {i}")
            )
        _finish(api, job_id)
        rest = await _frames(resp)  # ends by itself after the terminal event
    assert first[0] == {"retry": str(http_sse.RETRY_MS)}
    assert _seqs(first) + _seqs(rest) == list(range(1, 9))
    events = [json.loads(f["data"]) for f in first + rest if "data" in f]
    assert events[0]["state"] == "JOB_STATE_QUEUED"
    assert [e["message"] for e in events[4:7]] == ["live 0", "live 1", "live 2"]
    assert events[-1]["state"] == "JOB_STATE_CANCELLED" and events[-1]["seq"] == "8"
    got = (await api.stub.GetJob(opb.GetJobRequest(job_id=job_id))).last_seq
    assert got == 8
    grpc_events = [
        json_format.MessageToDict(e)
        async for e in api.stub.WatchJob(opb.WatchJobRequest(job_id=job_id))
    ]
    assert events == grpc_events


async def test_events_resume_after_last_event_id_which_wins_over_after_seq(api: Api) -> None:
    job_id = _running(api, 5)
    _finish(api, job_id)
    url = f"{api.url}/api/v1/jobs/{job_id}/events"
    async with api.session.get(url, params={"after_seq": "2"}) as resp:
        assert _seqs(await _frames(resp)) == [3, 4, 5, 6, 7]
    async with api.session.get(
        url, params={"after_seq": "1"}, headers={"Last-Event-ID": "5"}
    ) as resp:
        assert _seqs(await _frames(resp)) == [6, 7]
    async with api.session.get(url, headers={"Last-Event-ID": "7"}) as resp:
        assert resp.status == 204  # nothing after the terminal event: EventSource stops
    status, body = await api.get(url.removeprefix(api.url), headers={"Last-Event-ID": "9"})
    assert status == 400 and body["code"] == "OUT_OF_RANGE" and body["field"] == "after_seq"
    assert "has 7 events" in body["message"]
    status, body = await api.get(url.removeprefix(api.url), headers={"Last-Event-ID": "-1"})
    assert status == 400 and body["field"] == "Last-Event-ID"


async def test_a_quiet_stream_sends_keep_alive_comments(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_sse, "HEARTBEAT_S", 0.2)
    job_id = _running(api, 1)
    async with api.session.get(f"{api.url}/api/v1/jobs/{job_id}/events") as resp:
        await _frames(resp, until_seq=2)
        line = await asyncio.wait_for(resp.content.readline(), 5)
        assert line == b": keep-alive\n"


async def test_stop_ends_open_streams_at_once_saying_where_to_resume(tmp_path: Path) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0", http_listen="127.0.0.1:0", state_dir=tmp_path / "state"
        )
    )
    assert orchestrator.http is not None
    book = orchestrator.book
    job_id = book.create(REQUEST)[0].job_id
    book.append(job_id, _event(JobState.RUNNING, EventKind.EPOCH, 5.0, "running"))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{orchestrator.http.url}api/v1/jobs/{job_id}/events") as resp,
    ):
        await _frames(resp, until_seq=2)
        started = time.monotonic()
        stopping = asyncio.create_task(orchestrator.stop(5.0))
        rest = await asyncio.wait_for(_frames(resp), 3)
        await stopping
        took = time.monotonic() - started
    assert rest[-1]["event"] == "interrupted"
    error = json.loads(rest[-1]["data"])
    assert error["code"] == "UNAVAILABLE" and error["lastEventId"] == "2"
    assert "after_seq 2" in error["message"]
    assert took < 3.0, f"stop took {took:.1f}s with a stream open"


# -- nodes, models, strategies, configurations, with a real trainer ------------------------------


@pytest.fixture
async def trained(tmp_path: Path) -> AsyncIterator[tuple[Api, Any]]:
    trainer = await create_trainer(TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work"))
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            nodes=(trainer.address,),
            state_dir=tmp_path / "state",
        )
    )
    assert orchestrator.http is not None
    channel = plumbing.create_channel(orchestrator.address)
    try:
        async with aiohttp.ClientSession() as session:
            yield (
                Api(
                    orchestrator,
                    orchestrator.http.url.rstrip("/"),
                    session,
                    orchestrator_pb2_grpc.OrchestratorStub(channel),
                ),
                trainer,
            )
    finally:
        await channel.close(None)
        await orchestrator.stop(0)
        await trainer.stop(0)


async def test_a_real_job_followed_over_sse_then_its_model_downloaded(
    trained: tuple[Api, Any],
) -> None:
    api, trainer = trained
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 2
    request.data.bars = 1200
    job = await api.stub.SubmitJob(request)
    async with api.session.get(f"{api.url}/api/v1/jobs/{job.job_id}/events") as resp:
        events = [json.loads(f["data"]) for f in await _frames(resp) if "data" in f]
    assert events[-1]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    percentages = [e.get("percentage", 0.0) for e in events]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    epochs = [e for e in events if e["kind"] == "EVENT_KIND_EPOCH"]
    assert epochs and {"loss", "val_loss"} <= set(epochs[-1]["metrics"])

    status, nodes = await api.get("/api/v1/nodes")
    grpc_nodes = json_format.MessageToDict(await api.stub.ListNodes(opb.ListNodesRequest()))
    assert status == 200 and nodes["nodes"][0]["address"] == trainer.address
    assert nodes["nodes"][0]["health"] == grpc_nodes["nodes"][0]["health"] == "NODE_HEALTH_SERVING"

    ref = events[-1]["result"]["model"]
    status, models = await api.get("/api/v1/models")
    assert status == 200 and [m["name"] for m in models["models"]] == [ref["name"]]
    status, model = await api.get(f"/api/v1/models/{ref['name']}")
    grpc_model = await api.stub.GetModel(opb.GetModelRequest(name=ref["name"]))
    assert status == 200 and model == json_format.MessageToDict(grpc_model)
    assert json.loads(model["metadataJson"])["repository"]["sha256"] == ref["sha256"]
    async with api.session.get(f"{api.url}/api/v1/models/{ref['name']}/download") as resp:
        assert resp.status == 200
        data = await resp.read()
        assert resp.headers["X-Trainwire-Sha256"] == ref["sha256"]
        assert resp.headers["Content-Disposition"].endswith('.safetensors"')
    assert hashlib.sha256(data).hexdigest() == ref["sha256"]
    assert len(data) == int(ref["sizeBytes"])


@pytest.mark.parametrize(
    ("path", "rpc", "request_message"),
    [
        ("/api/v1/strategies", "ListStrategies", opb.ListStrategiesRequest()),
        ("/api/v1/configurations", "ListConfigurations", opb.ListConfigurationsRequest()),
    ],
)
async def test_strategies_and_configurations_mirror_grpc(
    api: Api, path: str, rpc: str, request_message: Any
) -> None:
    """Whatever the gRPC method answers, the route answers the same (501 while unimplemented)."""
    status, body = await api.get(path)
    try:
        reply = await getattr(api.stub, rpc)(request_message)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() is grpc.StatusCode.UNIMPLEMENTED, exc
        assert status == 501 and body["code"] == "UNIMPLEMENTED", body
        return
    assert status == 200 and body == json_format.MessageToDict(reply)


# -- security ------------------------------------------------------------------------------------


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


async def test_the_token_guards_the_api_but_not_health_or_the_page(tmp_path: Path) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            state_dir=tmp_path / "state",
            security=plumbing.Security(token=TOKEN),
        )
    )
    assert orchestrator.http is not None
    url = orchestrator.http.url
    try:
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with session.get(f"{url}api/v1/jobs", headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 401 and body["code"] == "UNAUTHENTICATED", body
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
                    assert "authorization: Bearer <token>" in body["message"]
            good = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(f"{url}api/v1/jobs", headers=good) as resp:
                assert resp.status == 200
            async with session.get(f"{url}healthz") as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "SERVING"
            async with session.get(url) as resp:
                assert resp.status == 200 and "<title>" in await resp.text()
    finally:
        await orchestrator.stop(0)


async def test_https_with_mtls_uses_the_grpc_certificates(tmp_path: Path, certs: Certs) -> None:
    security = plumbing.Security(
        tls_cert=certs.server_cert, tls_key=certs.server_key, tls_ca=certs.ca, token=TOKEN
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            state_dir=tmp_path / "state",
            security=security,
        )
    )
    assert orchestrator.http is not None
    url = orchestrator.http.url
    assert url.startswith("https://127.0.0.1:")
    client = ssl.create_default_context(cafile=str(certs.ca))
    client.load_cert_chain(certs.client_cert, certs.client_key)
    no_cert = ssl.create_default_context(cafile=str(certs.ca))
    try:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(f"{url}api/v1/nodes", ssl=client, headers=headers) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"{url}healthz", ssl=no_cert) as resp:
                    await resp.read()
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url.replace("https", "http") + "healthz") as resp:
                    await resp.read()
    finally:
        await orchestrator.stop(0)


def test_a_bad_http_listen_is_a_configuration_error() -> None:
    from services.orchestrator.http_server import split_listen

    assert split_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert split_listen("[::1]:0") == ("::1", 0)
    assert split_listen(":9000") == ("0.0.0.0", 9000)
    for bad in ("8080", "host:", "host:http", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            split_listen(bad)
