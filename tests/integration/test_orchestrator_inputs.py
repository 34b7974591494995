"""The orchestrator's list and job RPCs under large, odd or forged input.

- ``ListJobs`` and ``ListModels`` page by keyset cursors: an item added between two pages
  never repeats another; page tokens are validated strictly (a 5000-digit token is
  INVALID_ARGUMENT, not INTERNAL); a page is bounded by bytes as well as count, so jobs with huge
  fields never make the default ``ListJobs`` exceed the message limit.
- Every string field of the job and model RPCs has a bound: job ids follow the one job-id rule,
  ``CancelJob.reason``, ``ListModels.strategy`` and model names have length caps.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from shared.rpc import plumbing, serde
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.integration.test_bad_input import field_violations

pytestmark = pytest.mark.timeout(120)


@dataclass
class Bare:
    """An orchestrator with no trainer: jobs stay QUEUED, models are put in its repository."""

    server: OrchestratorServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    root: Path
    models: int = 0

    def add_job(self, request_id: str = "") -> str:
        message = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], request_id=request_id)
        record, _ = self.server.book.create(serde.request_from_proto(message))
        return record.job_id

    def add_model(self, strategy: str, symbol: str) -> str:
        self.models += 1
        staged = self.root / f"staged-{self.models}"
        weights = f"weights-{self.models}".encode()  # distinct: identical retrains dedupe
        staged.write_bytes(weights)
        ref = self.server.repository.store(
            job_id=f"model-job-{self.models}",
            staged_weights=staged,
            sha256=hashlib.sha256(weights).hexdigest(),
            metadata={},
            strategy=strategy,
            symbols=(symbol,),
            timeframes=("1h",),
        )
        return ref.name

    async def all_jobs(self, page_size: int = 0) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            reply = await self.stub.ListJobs(
                opb.ListJobsRequest(page_size=page_size, page_token=token)
            )
            seen += [j.job_id for j in reply.jobs]
            token = reply.next_page_token
            if not token:
                return seen


@pytest_asyncio.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Bare]:
    server = await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", state_dir=tmp_path / "state")
    )
    channel = plumbing.create_channel(server.address)
    try:
        yield Bare(server, orchestrator_pb2_grpc.OrchestratorStub(channel), tmp_path)
    finally:
        await channel.close(None)
        await server.stop(0)


async def _refused(call: object, field: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field_violations(err.value) == [field]
    details = err.value.details() or ""
    assert len(details) < 1100
    return details


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rpc", ["ListJobs", "ListModels"])
async def test_a_5000_digit_page_token_is_invalid_argument(bare: Bare, rpc: str) -> None:
    request = (opb.ListJobsRequest if rpc == "ListJobs" else opb.ListModelsRequest)(
        page_token="9" * 5000
    )
    details = await _refused(getattr(bare.stub, rpc)(request), "page_token")
    assert "next_page_token" in details


async def test_a_list_jobs_token_is_not_a_list_models_token(bare: Bare) -> None:
    for _ in range(3):
        bare.add_job()
    reply = await bare.stub.ListJobs(opb.ListJobsRequest(page_size=1))
    assert reply.next_page_token
    await _refused(
        bare.stub.ListModels(opb.ListModelsRequest(page_token=reply.next_page_token)), "page_token"
    )


async def test_a_job_submitted_between_two_pages_repeats_none_and_skips_none(bare: Bare) -> None:
    before = [bare.add_job() for _ in range(5)]
    first = await bare.stub.ListJobs(opb.ListJobsRequest(page_size=2))
    bare.add_job()  # newest: it belongs before page 1, so it shows on no later page
    seen = [j.job_id for j in first.jobs]
    token = first.next_page_token
    while token:
        reply = await bare.stub.ListJobs(opb.ListJobsRequest(page_size=2, page_token=token))
        seen += [j.job_id for j in reply.jobs]
        token = reply.next_page_token
    assert seen == list(reversed(before))


async def test_a_model_stored_between_two_pages_repeats_none_and_skips_none(bare: Bare) -> None:
    before = [bare.add_model("strat", symbol) for symbol in ("AAA", "BBB", "CCC", "DDD")]
    first = await bare.stub.ListModels(opb.ListModelsRequest(page_size=2))
    assert [m.name for m in first.models] == before[:2]
    assert bare.add_model("strat", "AAA") == "strat/AAA_1h_v2"  # sorts inside page 1
    seen = [m.name for m in first.models]
    token = first.next_page_token
    while token:
        reply = await bare.stub.ListModels(opb.ListModelsRequest(page_size=2, page_token=token))
        seen += [m.name for m in reply.models]
        token = reply.next_page_token
    assert seen == before


async def test_jobs_with_huge_fields_never_make_a_page_exceed_the_message_limit(
    bare: Bare,
) -> None:
    """Nine jobs of 2 MB each are 18 MB: more than one reply can carry. Each page stays under
    the limit, and paging reaches every job."""
    jobs = [bare.add_job(request_id=f"{i}-" + "r" * 2_000_000) for i in range(9)]
    reply = await bare.stub.ListJobs(opb.ListJobsRequest())
    assert reply.jobs and reply.next_page_token
    assert reply.ByteSize() <= plumbing.MAX_MESSAGE_BYTES // 2 + 1024
    assert sorted(await bare.all_jobs()) == sorted(jobs)


async def test_states_filter_pages_through_only_those_states(bare: Bare) -> None:
    jobs = [bare.add_job() for _ in range(3)]
    await bare.stub.CancelJob(opb.CancelJobRequest(job_id=jobs[1]))
    seen, token = [], ""
    while True:
        reply = await bare.stub.ListJobs(
            opb.ListJobsRequest(states=[ppb.JOB_STATE_QUEUED], page_size=1, page_token=token)
        )
        seen += [j.job_id for j in reply.jobs]
        token = reply.next_page_token
        if not token:
            break
    assert seen == [jobs[2], jobs[0]]


# -- bounded strings ----------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["../../etc", "/tmp/x", "a" * 65, "x" * 1_000_000, "a.b", ""])
@pytest.mark.parametrize("rpc", ["GetJob", "CancelJob", "WatchJob"])
async def test_a_malformed_job_id_is_invalid_argument_on_every_job_rpc(
    bare: Bare, rpc: str, job_id: str
) -> None:
    if rpc == "GetJob":
        call: object = bare.stub.GetJob(opb.GetJobRequest(job_id=job_id))
    elif rpc == "CancelJob":
        call = bare.stub.CancelJob(opb.CancelJobRequest(job_id=job_id))
    else:

        async def first() -> object:
            async for event in bare.stub.WatchJob(opb.WatchJobRequest(job_id=job_id)):
                return event
            return None

        call = first()
    await _refused(call, "job_id")


async def test_a_cancel_reason_longer_than_1024_characters_is_refused(bare: Bare) -> None:
    job_id = bare.add_job()
    details = await _refused(
        bare.stub.CancelJob(opb.CancelJobRequest(job_id=job_id, reason="r" * 1_000_000)), "reason"
    )
    assert "1024" in details
    got = await bare.stub.GetJob(opb.GetJobRequest(job_id=job_id))
    assert got.state == ppb.JOB_STATE_QUEUED  # nothing happened
    done = await bare.stub.CancelJob(opb.CancelJobRequest(job_id=job_id, reason="r" * 1024))
    assert done.state == ppb.JOB_STATE_CANCELLED


@pytest.mark.parametrize(
    "strategy", ["s" * 81, "x" * 1_000_000, "my strategy", "../etc", "SYNTH\n", "str\u00e4t"]
)
async def test_list_models_refuses_a_strategy_that_is_no_strategy_name(
    bare: Bare, strategy: str
) -> None:
    await _refused(bare.stub.ListModels(opb.ListModelsRequest(strategy=strategy)), "strategy")


async def test_list_models_filters_by_a_strategy_name(bare: Bare) -> None:
    a = bare.add_model("alpha", "AAA")
    bare.add_model("beta", "AAA")
    reply = await bare.stub.ListModels(opb.ListModelsRequest(strategy="alpha"))
    assert [m.name for m in reply.models] == [a]


@pytest.mark.parametrize("rpc", ["GetModel", "DownloadModel"])
async def test_a_model_name_longer_than_the_cap_is_refused_without_echoing_it(
    bare: Bare, rpc: str
) -> None:
    name = "s/" + "n" * 500_000
    if rpc == "GetModel":
        call: object = bare.stub.GetModel(opb.GetModelRequest(name=name))
    else:

        async def first() -> object:
            async for chunk in bare.stub.DownloadModel(opb.DownloadModelRequest(name=name)):
                return chunk
            return None

        call = first()
    details = await _refused(call, "name")
    assert "nnnnnnnnnn" not in details
