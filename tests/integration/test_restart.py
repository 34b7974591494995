"""The orchestrator restarts mid-job: the job store brings every job back, running jobs are
re-attached on their node and finish normally, waiting ones run, watchers resume by seq.

Every test runs on both persistent stores: SQLite under the state dir (the default) and a real
PostgreSQL server (``tests/support/postgres.py``, a fresh database per test)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.jobs import JobBook
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.orchestrator.store import open_store
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.jobs import JobState
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSpec, TrainingRequest, TrainingSpec, default_strategy

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    """The ``--store`` URL: "" (SQLite, jobs.sqlite3 in the state dir) or a PostgreSQL database."""
    return "" if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


def _request(epochs: int, request_id: str = "") -> spb.TrainRequest:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], request_id=request_id)
    request.strategy.training.epochs = epochs
    request.data.bars = 3000
    return request


async def _start(
    listen: str, trainer: str, state: Path, store: str, max_attempts: int = 2
) -> OrchestratorServer:
    return await create_orchestrator(
        OrchestratorConfig(
            listen=listen,
            nodes=(trainer,),
            state_dir=state,
            store=store,
            max_attempts=max_attempts,
        )
    )


async def test_a_running_job_survives_an_orchestrator_restart(tmp_path: Path, store: str) -> None:
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", upload_backoff_s=0.2)
    )
    state = tmp_path / "state"
    first = await _start("127.0.0.1:0", trainer.address, state, store)
    address = first.address
    try:
        async with plumbing.create_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            job = await stub.SubmitJob(_request(epochs=25, request_id="restart-1"))
            seen: list[ppb.ProgressEvent] = []
            async for event in stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
                seen.append(event)
                if event.kind == ppb.EVENT_KIND_EPOCH:
                    break  # mid-training
        await first.stop(0)  # the orchestrator goes away; the trainer keeps training

        second = await _start(address, trainer.address, state, store)
        try:
            async with plumbing.create_channel(address) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                # The watcher reconnects where it left off.
                rest = [
                    e
                    async for e in stub.WatchJob(
                        opb.WatchJobRequest(job_id=job.job_id, after_seq=seen[-1].seq)
                    )
                ]
                again = await stub.SubmitJob(_request(epochs=25, request_id="restart-1"))
        finally:
            await second.stop(0)
    finally:
        await trainer.stop(0)

    events = seen + rest
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1].error.message
    epochs = [e.epoch for e in events if e.kind == ppb.EVENT_KIND_EPOCH]
    assert epochs == sorted(set(epochs)), "an epoch was relayed twice or out of order"
    assert again.job_id == job.job_id  # request_id idempotency survives the restart
    stored = list((state / "models").glob("*/*_v*/model.safetensors"))
    assert len(stored) == 1


async def test_a_job_whose_node_forgot_it_is_failed_not_left_running(
    tmp_path: Path, store: str
) -> None:
    state = tmp_path / "state"
    jobs = open_store(store, state)
    book = JobBook(jobs)
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    record, _ = book.create(request)
    trainer = await create_trainer(TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "w"))
    book.place(record.job_id, trainer.address)
    book.close()  # commits what is queued
    jobs.close()

    orchestrator = await _start("127.0.0.1:0", trainer.address, state, store, max_attempts=1)
    try:
        async with plumbing.create_channel(orchestrator.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            events = [e async for e in stub.WatchJob(opb.WatchJobRequest(job_id=record.job_id))]
    finally:
        await orchestrator.stop(0)
        await trainer.stop(0)
    assert events[-1].state == ppb.JOB_STATE_FAILED
    assert "no longer knows" in events[-1].error.message


async def test_the_store_round_trips_jobs_and_events(tmp_path: Path, store: str) -> None:
    book = JobBook(open_store(store, tmp_path))
    request = TrainingRequest(
        symbols=("SYNTH", "ALT"),
        timeframes=("1h", "4h"),
        strategy=default_strategy(),
        request_id="abc",
    )
    record, created = book.create(request)
    assert created
    book.place(record.job_id, "n:1")
    (first,) = book.events(record.job_id)
    book.append(record.job_id, replace(first, state=JobState.RUNNING, message="go"), node_seq=7)
    await book.flushed()
    reopened = JobBook(open_store(store, tmp_path))
    loaded = reopened.get(record.job_id)
    assert loaded.request == request
    assert reopened.events(record.job_id) == book.events(record.job_id)
    assert [e.message for e in reopened.events(record.job_id)] == ["Queued", "go"]
    assert (loaded.state, loaded.node, loaded.attempt, loaded.node_seq) == (
        JobState.RUNNING,
        "n:1",
        1,
        7,
    )
    again, created = JobBook(open_store(store, tmp_path)).create(request)
    assert not created and again.job_id == record.job_id


async def test_restart_requeues_waiting_jobs(tmp_path: Path, store: str) -> None:
    state = tmp_path / "state"
    jobs = open_store(store, state)
    request = TrainingRequest(
        symbols=("SYNTH",),
        timeframes=("1h",),
        strategy=default_strategy(),
    )
    request = replace(
        request,
        strategy=replace(request.strategy, training=TrainingSpec(epochs=1)),
        data=DataSpec(bars=1200),
    )
    record, _ = JobBook(jobs).create(request)
    jobs.close()
    trainer = await create_trainer(TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "w"))
    orchestrator = await _start("127.0.0.1:0", trainer.address, state, store)
    try:
        async with plumbing.create_channel(orchestrator.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            events = await asyncio.wait_for(_collect(stub, record.job_id), timeout=120)
    finally:
        await orchestrator.stop(0)
        await trainer.stop(0)
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED


async def _collect(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, job_id: str
) -> list[ppb.ProgressEvent]:
    return [e async for e in stub.WatchJob(opb.WatchJobRequest(job_id=job_id))]
