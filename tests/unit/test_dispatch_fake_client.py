"""The dispatcher against fake trainer clients: no servers, no channels.

Each fake node plays a script per ``Train`` call (events to yield, or an error to raise), so
the relay, a retry after a lost node, a refusal for want of a slot and cancellation are driven
exactly and checked through the job's events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.orchestrator.dispatch import Dispatcher
from services.orchestrator.jobs import JobBook
from services.orchestrator.registry import NodeRegistry
from services.orchestrator.repository import ModelRepository
from services.orchestrator.trainer_client import (
    NoSlot,
    Probe,
    RelayedEvent,
    TrainerCallError,
    TrainerClient,
    Unreachable,
)
from shared.job_requests import JobRequest
from shared.jobs import ErrorCode, EventKind, JobError, JobEvent, JobState, TrainResult
from shared.nodes import NodeInfo
from shared.spec import TrainingRequest, default_strategy

pytestmark = pytest.mark.timeout(30)

Step = JobEvent | TrainerCallError | asyncio.Event
"""What a fake Train call does next: yield an event, raise an error, or wait for an event."""


def _event(state: JobState, message: str, **kw: object) -> JobEvent:
    return JobEvent(
        job_id="",
        seq=0,
        time=time.time(),
        state=state,
        kind=EventKind.LIFECYCLE,
        message=message,
        **kw,  # type: ignore[arg-type]
    )


def _failed(message: str) -> JobEvent:
    return _event(
        JobState.FAILED,
        f"Failed: {message}",
        error=JobError(code=ErrorCode.DATA_ERROR.value, message=message, where="train"),
    )


class FakeTrainer:
    """A node that plays ``scripts`` (one list of steps per Train call, in order)."""

    def __init__(self, address: str, scripts: list[list[Step]]) -> None:
        self._address = address
        self.scripts = scripts
        self.trained: list[str] = []
        self.cancelled: list[tuple[str, str]] = []
        self.cancel_error: TrainerCallError | None = None
        self.cancel_seen = asyncio.Event()

    @property
    def address(self) -> str:
        return self._address

    async def train(
        self, job_id: str, request: JobRequest, *, upload_target: str, upload_token: str
    ) -> AsyncIterator[RelayedEvent]:
        self.trained.append(job_id)
        script = self.scripts.pop(0)
        for seq, step in enumerate(script, start=1):
            if isinstance(step, TrainerCallError):
                raise step
            if isinstance(step, asyncio.Event):
                await step.wait()
                continue
            yield RelayedEvent(seq, step)

    async def attach(self, job_id: str, after_seq: int) -> AsyncIterator[RelayedEvent]:
        raise Unreachable("UNAVAILABLE", "fake nodes do not re-attach")
        yield  # an async generator

    async def cancel(self, job_id: str, reason: str, *, timeout_s: float = 5.0) -> None:
        self.cancelled.append((job_id, reason))
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancel_seen.set()

    async def resend_model(
        self, job_id: str, *, upload_target: str, upload_token: str, timeout_s: float = 600.0
    ) -> TrainResult:
        raise TrainerCallError("UNIMPLEMENTED", "not in these tests")

    async def probe(self, timeout_s: float) -> Probe:
        return Probe(NodeInfo(node_id=self._address, address=self._address, slots=1))

    async def close(self) -> None:
        pass


class Cluster:
    def __init__(self, tmp_path: Path, nodes: dict[str, FakeTrainer], **kw: object) -> None:
        self.nodes = nodes
        self.book = JobBook()

        def connect(address: str) -> TrainerClient:
            return nodes[address]

        self.registry = NodeRegistry(probe_timeout_s=1.0, probe_interval_s=60.0, connect=connect)
        for address in nodes:
            self.registry.add(address)
        self.dispatcher = Dispatcher(
            self.book,
            self.registry,
            ModelRepository(tmp_path / "models"),
            upload_target="orchestrator:1",
            **kw,  # type: ignore[arg-type]
        )
        self.dispatcher.start()

    async def submit(self) -> str:
        request = TrainingRequest(
            symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy()
        )
        record, _ = await self.book.create_job(request)
        self.dispatcher.submit(record)
        return record.job_id

    async def finish(self, job_id: str) -> list[JobEvent]:
        async def collect() -> list[JobEvent]:
            return [e async for e in self.book.watch(job_id, 0)]

        return await asyncio.wait_for(collect(), timeout=10)

    async def close(self) -> None:
        await self.dispatcher.stop()
        self.book.close()
        await self.registry.close()


async def test_the_relay_resequences_a_nodes_events_and_stops_at_the_terminal_one(
    tmp_path: Path,
) -> None:
    node = FakeTrainer(
        "a:1",
        [
            [
                _event(JobState.RUNNING, "Started", percentage=5.0),
                _event(JobState.RUNNING, "Batch", percentage=40.0),
                _event(JobState.RUNNING, "Batch", percentage=30.0),  # never shown lower
                _failed("loss is NaN"),
            ]
        ],
    )
    cluster = Cluster(tmp_path, {"a:1": node})
    try:
        job_id = await cluster.submit()
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.message for e in events] == [
        "Queued",
        "Started",
        "Batch",
        "Batch",
        "Failed: loss is NaN",
    ]
    assert [e.percentage for e in events[1:4]] == [5.0, 40.0, 40.0]
    assert all(e.node == "a:1" for e in events[1:])
    record = cluster.book.get(job_id)
    assert (record.state, record.node, record.attempt, record.node_seq) == (
        JobState.FAILED,
        "a:1",
        1,
        4,
    )
    assert record.error is not None and record.error.message == "loss is NaN"


async def test_success_without_a_stored_model_fails_the_job_naming_the_node(
    tmp_path: Path,
) -> None:
    node = FakeTrainer(
        "a:1", [[_event(JobState.RUNNING, "Started"), _event(JobState.SUCCEEDED, "ok")]]
    )
    cluster = Cluster(tmp_path, {"a:1": node})
    try:
        events = await cluster.finish(await cluster.submit())
    finally:
        await cluster.close()
    assert events[-1].state is JobState.FAILED
    assert events[-1].error is not None
    assert events[-1].error.code == ErrorCode.UPLOAD_FAILED.value
    assert "node a:1 reported success but no model was stored" in events[-1].error.message


async def test_a_node_lost_mid_job_gets_the_job_retried_on_another_node(tmp_path: Path) -> None:
    lost = FakeTrainer(
        "a:1", [[_event(JobState.RUNNING, "Started"), Unreachable("UNAVAILABLE", "gone")]]
    )
    spare = FakeTrainer("b:1", [[_event(JobState.RUNNING, "Started again"), _failed("boom")]])
    cluster = Cluster(tmp_path, {"a:1": lost, "b:1": spare}, reattach_window_s=0.0, max_attempts=2)
    try:
        job_id = await cluster.submit()
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    messages = [e.message for e in events]
    retry = next(m for m in messages if m.startswith("Retrying"))
    assert retry.startswith("Retrying (attempt 2/2): lost node a:1 mid-job (gone;")
    assert "Started again" in messages
    assert (lost.trained, spare.trained) == ([job_id], [job_id])
    record = cluster.book.get(job_id)
    assert (record.node, record.attempt) == ("b:1", 2)


async def test_a_node_lost_with_no_attempts_left_fails_the_job_naming_it(tmp_path: Path) -> None:
    lost = FakeTrainer("a:1", [[Unreachable("UNAVAILABLE", "connection refused")]])
    cluster = Cluster(tmp_path, {"a:1": lost}, reattach_window_s=0.0, max_attempts=1)
    try:
        events = await cluster.finish(await cluster.submit())
    finally:
        await cluster.close()
    assert events[-1].state is JobState.FAILED
    assert events[-1].error is not None
    assert events[-1].error.code == ErrorCode.NODE_LOST.value
    assert "lost node a:1 mid-job (connection refused" in events[-1].error.message


async def test_no_free_slot_puts_the_job_back_without_using_an_attempt(tmp_path: Path) -> None:
    full = FakeTrainer("a:1", [[NoSlot("RESOURCE_EXHAUSTED", "2/2 slots busy")]])
    free = FakeTrainer("b:1", [[_event(JobState.RUNNING, "Started"), _failed("boom")]])
    cluster = Cluster(tmp_path, {"a:1": full, "b:1": free}, max_attempts=1)
    try:
        job_id = await cluster.submit()
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    messages = [e.message for e in events]
    assert "Waiting: node a:1 has no free slot (2/2 slots busy)" in messages
    assert not any(m.startswith("Retrying") for m in messages)
    record = cluster.book.get(job_id)
    assert (record.node, record.attempt) == ("b:1", 1)  # the refused try did not count
    assert events[-1].message == "Failed: boom"


async def test_a_node_refusing_the_request_fails_the_job_as_invalid(tmp_path: Path) -> None:
    node = FakeTrainer("a:1", [[TrainerCallError("INVALID_ARGUMENT", "symbols: unknown")]])
    cluster = Cluster(tmp_path, {"a:1": node})
    try:
        events = await cluster.finish(await cluster.submit())
    finally:
        await cluster.close()
    assert events[-1].error is not None
    assert events[-1].error.code == ErrorCode.INVALID_REQUEST.value
    assert (
        events[-1].error.message == "node a:1 refused the job: INVALID_ARGUMENT: symbols: unknown"
    )


async def test_cancel_asks_the_node_and_the_node_ends_the_job(tmp_path: Path) -> None:
    stop = asyncio.Event()
    node = FakeTrainer(
        "a:1",
        [
            [
                _event(JobState.RUNNING, "Started"),
                stop,
                _event(
                    JobState.CANCELLED,
                    "Cancelled: enough",
                    error=JobError(code=ErrorCode.CANCELLED.value, message="enough", where="train"),
                ),
            ]
        ],
    )
    cluster = Cluster(tmp_path, {"a:1": node})
    try:
        job_id = await cluster.submit()
        async for event in cluster.book.watch(job_id, 0):
            if event.message == "Started":
                break
        reply = await cluster.dispatcher.cancel(job_id, "enough")
        assert reply.cancel_requested == "enough"
        assert node.cancelled == [(job_id, "enough")]
        stop.set()
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    assert events[-1].state is JobState.CANCELLED


async def test_cancel_with_the_node_unreachable_cancels_here(tmp_path: Path) -> None:
    hang = asyncio.Event()
    node = FakeTrainer("a:1", [[_event(JobState.RUNNING, "Started"), hang]])
    node.cancel_error = Unreachable("UNAVAILABLE", "no route")
    cluster = Cluster(tmp_path, {"a:1": node})
    try:
        job_id = await cluster.submit()
        async for event in cluster.book.watch(job_id, 0):
            if event.message == "Started":
                break
        reply = await cluster.dispatcher.cancel(job_id, "")
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    assert reply.state is JobState.CANCELLED
    assert events[-1].message == "Cancelled: cancelled by request (node a:1 unreachable)"


async def test_a_queued_job_is_cancelled_without_a_node(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, {})
    try:
        job_id = await cluster.submit()
        reply = await cluster.dispatcher.cancel(job_id, "changed my mind")
        events = await cluster.finish(job_id)
    finally:
        await cluster.close()
    assert reply.state is JobState.CANCELLED
    assert events[-1].message == "Cancelled: changed my mind"
