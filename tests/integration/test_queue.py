"""The queue keeps the jobs it cannot place now.

A job that no node can take right now (none serving, none known yet, every slot taken, even by
jobs this orchestrator did not place) stays QUEUED, with the reason in one QUEUED event and in
``GetJob.message``, and runs once a node can take it; with a queue timeout it fails
NODE_UNAVAILABLE after waiting that long, saying why. A trainer that answers "all slots busy"
(RESOURCE_EXHAUSTED) sends the job back to the queue, costing no attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import SERVICE_NAME, TrainerServer
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

pytestmark = pytest.mark.timeout(120)

TERMINAL = (ppb.JOB_STATE_SUCCEEDED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_CANCELLED)


def request(epochs: int = 1, request_id: str = "") -> spb.TrainRequest:
    message = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], request_id=request_id)
    message.strategy.training.epochs = epochs
    message.data.bars = 1500
    return message


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@dataclass
class Watch:
    """Follows one job's events (``WatchJob``) as they come."""

    stream: AsyncIterator[ppb.ProgressEvent]
    events: list[ppb.ProgressEvent] = field(default_factory=list)

    async def until(self, text: str) -> ppb.ProgressEvent:
        """The first event (already seen or next) whose message contains ``text``."""
        for event in self.events:
            if text in event.message:
                return event
        async for event in self.stream:
            self.events.append(event)
            if text in event.message:
                return event
            assert event.state not in TERMINAL, f"ended before {text!r}: {event}"
        raise AssertionError(f"the stream ended before {text!r}")

    async def final(self) -> ppb.ProgressEvent:
        if self.events and self.events[-1].state in TERMINAL:
            return self.events[-1]
        async for event in self.stream:
            self.events.append(event)
        return self.events[-1]

    def waiting(self) -> list[str]:
        return [e.message for e in self.events if e.message.startswith("Waiting")]


def watch(stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, job_id: str) -> Watch:
    return Watch(aiter(stub.WatchJob(opb.WatchJobRequest(job_id=job_id))))


@dataclass
class Setup:
    orchestrator: OrchestratorServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    trainer: TrainerServer | None


async def _start(
    tmp_path: Path, *, trainer: bool = True, static: bool = True, **config: float
) -> Setup:
    node = None
    if trainer:
        node = await create_trainer(
            TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", upload_backoff_s=0.05)
        )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            nodes=(node.address,) if node and static else (),
            state_dir=tmp_path / "state",
            probe_interval_s=config.pop("probe_interval_s", 0.05),
            **config,  # type: ignore[arg-type]
        )
    )
    stub = orchestrator_pb2_grpc.OrchestratorStub(plumbing.create_channel(orchestrator.address))
    return Setup(orchestrator, stub, node)


async def _stop(setup: Setup) -> None:
    await setup.orchestrator.stop(0)
    if setup.trainer is not None:
        await setup.trainer.stop(0)


# -- nothing serving right now ----------------------------------------------------------------


async def test_a_job_waits_while_no_node_serves_and_runs_when_one_returns(tmp_path: Path) -> None:
    setup = await _start(tmp_path)
    trainer = setup.trainer
    assert trainer is not None
    try:
        # The only trainer stops serving (a restart, a deploy): the orchestrator sees it.
        await plumbing.set_serving(trainer.health, [SERVICE_NAME], serving=False)
        await setup.orchestrator.registry.refresh(force=True)

        job = await setup.stub.SubmitJob(request())
        assert job.state == ppb.JOB_STATE_QUEUED
        follow = watch(setup.stub, job.job_id)
        waiting = await follow.until("Waiting")
        assert waiting.state == ppb.JOB_STATE_QUEUED
        assert "no trainer node is serving" in waiting.message
        assert trainer.address in waiting.message

        # Other submissions make the placement loop look again: still one event for one reason.
        others = [await setup.stub.SubmitJob(request(request_id=f"other-{i}")) for i in range(3)]
        for other in others:
            await watch(setup.stub, other.job_id).until("Waiting")
        got = await setup.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        assert got.state == ppb.JOB_STATE_QUEUED
        assert got.message == waiting.message
        assert got.last_seq == 2  # "Queued", then the one "Waiting: ..."

        await plumbing.set_serving(trainer.health, [SERVICE_NAME], serving=True)
        final = await follow.final()
        assert final.state == ppb.JOB_STATE_SUCCEEDED, final
        assert final.node == trainer.address
        assert follow.waiting() == [waiting.message]
        for other in others:
            last = await watch(setup.stub, other.job_id).final()
            assert last.state == ppb.JOB_STATE_SUCCEEDED, last
    finally:
        await _stop(setup)


async def test_with_no_nodes_known_a_job_waits_until_a_trainer_registers(tmp_path: Path) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", state_dir=tmp_path / "state")
    )
    trainer = None
    try:
        stub = orchestrator_pb2_grpc.OrchestratorStub(plumbing.create_channel(orchestrator.address))
        job = await stub.SubmitJob(request())
        follow = watch(stub, job.job_id)
        waiting = await follow.until("Waiting")
        assert "no trainer nodes are known yet" in waiting.message
        assert "--orchestrator" in waiting.message and "--node" in waiting.message

        trainer = await create_trainer(
            TrainerConfig(
                listen="127.0.0.1:0",
                work_dir=tmp_path / "work",
                orchestrator=orchestrator.address,
                upload_backoff_s=0.05,
            )
        )
        final = await follow.final()
        assert final.state == ppb.JOB_STATE_SUCCEEDED, final
        assert final.node == trainer.address
    finally:
        await orchestrator.stop(0)
        if trainer is not None:
            await trainer.stop(0)


async def test_a_job_that_waits_past_the_queue_timeout_fails_saying_why(tmp_path: Path) -> None:
    setup = await _start(tmp_path, trainer=False, queue_timeout_s=0.3)
    try:
        job = await setup.stub.SubmitJob(request())
        final = await watch(setup.stub, job.job_id).final()
        assert final.state == ppb.JOB_STATE_FAILED
        assert final.error.code == "NODE_UNAVAILABLE", final.error
        assert "waited" in final.error.message and "queue timeout 0.3s" in final.error.message
        assert "no trainer nodes are known yet" in final.error.message
        got = await setup.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        assert got.state == ppb.JOB_STATE_FAILED and got.error.code == "NODE_UNAVAILABLE"
    finally:
        await _stop(setup)


async def test_a_waiting_job_can_be_cancelled(tmp_path: Path) -> None:
    setup = await _start(tmp_path, trainer=False)
    try:
        job = await setup.stub.SubmitJob(request())
        follow = watch(setup.stub, job.job_id)
        await follow.until("Waiting")
        await setup.stub.CancelJob(opb.CancelJobRequest(job_id=job.job_id, reason="not today"))
        final = await follow.final()
        assert final.state == ppb.JOB_STATE_CANCELLED
        assert "not today" in final.message
    finally:
        await _stop(setup)


# -- slots taken by jobs this orchestrator did not place ---------------------------------------


@dataclass
class Foreign:
    """A job started on the trainer directly (``Trainer.Train``), not by the orchestrator."""

    stub: trainer_pb2_grpc.TrainerAsyncStub
    stream: AsyncIterator[ppb.ProgressEvent]

    @classmethod
    async def start(cls, trainer: TrainerServer) -> Foreign:
        stub = trainer_pb2_grpc.TrainerStub(plumbing.create_channel(trainer.address))
        job = trainer_pb2.TrainerJob(
            job_id="direct-1",
            request=request(epochs=100_000),
            upload_target="127.0.0.1:9",
            upload_token="t",
        )
        stream = aiter(stub.Train(job))
        first = await anext(stream)
        assert first.state == ppb.JOB_STATE_RUNNING, first
        return cls(stub, stream)

    async def cancel(self) -> None:
        await self.stub.Cancel(trainer_pb2.CancelRequest(job_id="direct-1", reason="done"))
        events = [e async for e in self.stream]
        assert events[-1].state == ppb.JOB_STATE_CANCELLED


async def test_a_slot_taken_outside_the_orchestrator_is_waited_for(tmp_path: Path) -> None:
    setup = await _start(tmp_path)
    trainer = setup.trainer
    assert trainer is not None
    clock = FakeClock()  # probes happen only when the test says
    setup.orchestrator.registry.clock = clock
    try:
        foreign = await Foreign.start(trainer)
        await setup.orchestrator.registry.refresh(force=True)  # it reports the foreign job
        nodes = await setup.stub.ListNodes(opb.ListNodesRequest())
        assert [(n.slots, n.slots_used) for n in nodes.nodes] == [(1, 1)]

        job = await setup.stub.SubmitJob(request())
        follow = watch(setup.stub, job.job_id)
        waiting = await follow.until("Waiting")
        assert "every slot is busy" in waiting.message and trainer.address in waiting.message

        await foreign.cancel()
        clock.now += 60  # the next probe sees the free slot
        final = await follow.final()
        assert final.state == ppb.JOB_STATE_SUCCEEDED, final
        assert not any("no free slot" in e.message for e in follow.events)  # never refused
        got = await setup.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        assert got.attempt == 1
    finally:
        await _stop(setup)


async def test_a_trainer_answering_all_slots_busy_sends_the_job_back_to_the_queue(
    tmp_path: Path,
) -> None:
    setup = await _start(tmp_path)
    trainer = setup.trainer
    assert trainer is not None
    clock = FakeClock()
    setup.orchestrator.registry.clock = clock
    try:
        await setup.orchestrator.registry.refresh(force=True)  # the slot is free, as probed
        foreign = await Foreign.start(trainer)  # and taken right after the probe

        job = await setup.stub.SubmitJob(request())
        follow = watch(setup.stub, job.job_id)
        refused = await follow.until("no free slot")
        assert refused.state == ppb.JOB_STATE_QUEUED
        assert trainer.address in refused.message and "busy" in refused.message
        got = await setup.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        assert (got.state, got.attempt, got.node) == (ppb.JOB_STATE_QUEUED, 0, "")
        nodes = await setup.stub.ListNodes(opb.ListNodesRequest())
        assert [n.slots_used for n in nodes.nodes] == [1]  # the node's count, read again

        await foreign.cancel()
        clock.now += 60
        final = await follow.final()
        assert final.state == ppb.JOB_STATE_SUCCEEDED, final
        assert all(e.state != ppb.JOB_STATE_FAILED for e in follow.events)
        got = await setup.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        assert got.attempt == 1  # the refusal cost no attempt
    finally:
        await _stop(setup)


async def test_many_jobs_queue_behind_one_slot_and_all_run(tmp_path: Path) -> None:
    """Busy is a reason to wait, not to fail: three jobs for one slot run one after another."""
    setup = await _start(tmp_path)
    try:
        jobs = [await setup.stub.SubmitJob(request(request_id=f"many-{i}")) for i in range(3)]
        finals = await asyncio.gather(*(watch(setup.stub, j.job_id).final() for j in jobs))
        assert [f.state for f in finals] == [ppb.JOB_STATE_SUCCEEDED] * 3, finals
    finally:
        await _stop(setup)
