"""Job-size limits are a setting of each service: an orchestrator started with smaller limits
refuses at submit what exceeds them, naming the limit; a trainer given its own limits refuses
the same job before it builds anything."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import JobLimits
from tests.integration.test_bad_input import field_violations

pytestmark = pytest.mark.timeout(120)

SMALL = JobLimits(max_parameters=1_000, max_bars=1_000_000)


def _request() -> spb.TrainRequest:
    return spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])


async def test_an_orchestrator_with_small_limits_refuses_a_default_model(tmp_path: Path) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", state_dir=tmp_path / "state", limits=SMALL)
    )
    channel = plumbing.create_channel(orchestrator.address)
    try:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitJob(_request())
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "max_parameters" in (info.value.details() or "")
        assert field_violations(info.value) == ["strategy.model.hidden_layers"]
        # the default limits would have taken it: the setting is what refused it
        assert not orchestrator.book.listing([])
    finally:
        await channel.close(None)
        await orchestrator.stop(0)


async def test_a_trainer_with_small_limits_refuses_the_job_itself(tmp_path: Path) -> None:
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", limits=SMALL)
    )
    channel = plumbing.create_channel(trainer.address)
    try:
        stub = trainer_pb2_grpc.TrainerStub(channel)
        job = trainer_pb2.TrainerJob(
            job_id="limits-1", request=_request(), upload_target="127.0.0.1:1", upload_token="t"
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.Train(job):
                pass
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "max_parameters" in (info.value.details() or "")
        assert not list((tmp_path / "work").glob("jobs/*"))
    finally:
        await channel.close(None)
        await trainer.stop(0)
