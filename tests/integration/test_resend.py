"""A model trained but not delivered (the orchestrator unreachable past the node's upload
window) is not lost: the node keeps it spooled and the orchestrator asks for it again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared import errors
from shared.client import AsyncClient, JobState

pytestmark = pytest.mark.timeout(120)


async def test_a_failed_upload_is_re_sent_and_the_job_succeeds(tmp_path: Path) -> None:
    trainer = await create_trainer(
        TrainerConfig(
            listen="127.0.0.1:0",
            work_dir=tmp_path / "w",
            upload_attempts=1,
            upload_backoff_s=0.05,
            upload_window_s=0.3,
        )
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", nodes=(trainer.address,), state_dir=tmp_path / "s")
    )
    # The orchestrator's upload service is "down" until the dispatcher asks for a re-send.
    blocked = {"uploads": True}
    authorise = orchestrator.uploads._authorise

    def flaky_authorise(job_id: str, token: str) -> None:
        if blocked["uploads"]:
            raise errors.UnavailableError("upload service unavailable (test)")
        authorise(job_id, token)

    orchestrator.uploads._authorise = flaky_authorise  # type: ignore[method-assign]
    resend: Callable[..., Awaitable[bool]] = orchestrator.dispatcher._resend

    async def unblocking_resend(*args: Any) -> bool:
        blocked["uploads"] = False
        return await resend(*args)

    orchestrator.dispatcher._resend = unblocking_resend  # type: ignore[method-assign, assignment]
    try:
        async with AsyncClient(orchestrator.address) as tw:
            events = [e async for e in tw.train(["SYNTH"], ["1h"], epochs=1, bars=1200)]
            models = await tw.models()
    finally:
        await orchestrator.stop(0)
        await trainer.stop(0)

    last = events[-1]
    assert last.state is JobState.SUCCEEDED, last
    assert any("re-sending" in e.message for e in events)
    assert last.result is not None and last.result.model is not None
    assert "accuracy" in last.result.test_metrics  # the metrics travel with the re-send
    assert [m.name for m in models] == [last.result.model.name]
    assert not list((tmp_path / "w" / "jobs").glob("*/model.safetensors"))  # spool released


async def test_resend_of_an_unknown_job_is_not_found(tmp_path: Path) -> None:
    import grpc

    from shared.rpc import plumbing
    from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc

    trainer = await create_trainer(TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "w"))
    try:
        async with plumbing.create_channel(trainer.address) as channel:
            stub = trainer_pb2_grpc.TrainerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ResendModel(
                    trainer_pb2.ResendModelRequest(
                        job_id="nope", upload_target="127.0.0.1:9", upload_token="t"
                    )
                )
    finally:
        await trainer.stop(0)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no spooled model" in (err.value.details() or "")
