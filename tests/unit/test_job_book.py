"""JobBook's durability promise, checked with a store whose commits the test holds back.

A watcher is given an event only once the store has committed it; ``create_job`` answers only
once the job is committed; a burst of appends is committed in fewer transactions than events
(group commit); a finished job leaves memory once more than ``recent`` have finished after it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from services.orchestrator.jobs import JobBook
from services.orchestrator.store import AppendEvent, MemoryJobStore, Write
from services.orchestrator.store_writer import StoreWriter
from shared.jobs import EventKind, JobEvent, JobState
from shared.spec import TrainingRequest, default_strategy

pytestmark = pytest.mark.timeout(30)


class GatedStore(MemoryJobStore):
    """A memory store whose ``write`` waits for ``gate`` and counts its transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def write(self, writes: Sequence[Write]) -> None:
        self.gate.wait()
        super().write(writes)
        self.batches.append(len(writes))


def _request(request_id: str = "") -> TrainingRequest:
    return TrainingRequest(
        symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy(), request_id=request_id
    )


def _event(state: JobState = JobState.RUNNING, message: str = "batch") -> JobEvent:
    return JobEvent(
        job_id="", seq=0, time=time.time(), state=state, kind=EventKind.LIFECYCLE, message=message
    )


async def _next(watch: object) -> JobEvent:
    return await asyncio.wait_for(anext(watch), timeout=5)  # type: ignore[call-overload]


async def test_a_watcher_sees_an_event_only_once_it_is_committed() -> None:
    store = GatedStore()
    book = JobBook(store)
    record, _ = await book.create_job(_request())
    watch = book.watch(record.job_id, 0)
    assert (await _next(watch)).message == "Queued"
    store.gate.clear()
    book.append(record.job_id, _event(message="held back"))
    assert book.get(record.job_id).message == "held back"  # the book's state runs ahead
    pending = asyncio.ensure_future(_next(watch))
    await asyncio.sleep(0.1)
    assert not pending.done()  # not committed: not shown
    assert store.get_job(record.job_id).last_seq == 1  # type: ignore[union-attr]
    store.gate.set()
    event = await pending
    assert (event.seq, event.message) == (2, "held back")
    assert store.get_job(record.job_id).last_seq == 2  # type: ignore[union-attr]
    book.close()


async def test_create_answers_once_the_job_is_committed() -> None:
    store = GatedStore()
    book = JobBook(store)
    store.gate.clear()
    task = asyncio.ensure_future(book.create_job(_request("once")))
    await asyncio.sleep(0.1)
    assert not task.done()
    assert store.find_request("once") is None
    store.gate.set()
    _, created = await asyncio.wait_for(task, timeout=5)
    assert created
    assert store.find_request("once") is not None
    book.close()


async def test_a_burst_of_appends_commits_in_few_transactions() -> None:
    store = GatedStore()
    book = JobBook(store)
    record, _ = await book.create_job(_request())
    store.gate.clear()  # everything below queues up behind the held commit
    book.append(record.job_id, _event(message="first"))
    await asyncio.sleep(0.05)  # the writer holds "first" at the gate
    for n in range(200):
        book.append(record.job_id, _event(message=f"batch {n}"))
    book.append(record.job_id, _event(JobState.SUCCEEDED, "done"))
    store.gate.set()
    await book.flushed()
    events = [e async for e in book.watch(record.job_id, 0)]
    assert [e.seq for e in events] == list(range(1, 204))
    assert store.events(record.job_id, 0, 1000) == events
    assert len(store.batches) <= 4  # insert, "first", then the 201 others in one or two
    book.close()


async def test_a_refused_write_fails_its_waiter_and_not_the_others() -> None:
    store = MemoryJobStore()
    writer = StoreWriter(store, linger_s=0.05)
    bad = writer.submit(AppendEvent("nope", _event()))  # no such job
    with pytest.raises(ValueError, match="no job nope"):
        await writer.flushed(bad)
    writer.close()


async def test_finished_jobs_leave_memory_but_not_the_book() -> None:
    book = JobBook(MemoryJobStore(), recent=1)
    first, _ = await book.create_job(_request("first"))
    book.append(first.job_id, _event(JobState.CANCELLED, "Cancelled: test"))
    second, _ = await book.create_job(_request())
    book.append(second.job_id, _event(JobState.FAILED, "Failed: test"))
    await book.flushed()
    await asyncio.sleep(0.01)  # the loop publishes the commit
    assert first.job_id not in book._jobs  # evicted: read back from the store below
    old = await book.fetch(first.job_id)
    assert (old.state, old.message, old.last_seq) == (JobState.CANCELLED, "Cancelled: test", 2)
    assert [e.message async for e in book.watch(first.job_id, 1)] == ["Cancelled: test"]
    assert [r.job_id for r in await book.list_jobs([], after=None, limit=5)] == [
        second.job_id,
        first.job_id,
    ]
    again, created = await book.create_job(_request("first"))
    assert not created and again.job_id == first.job_id
    book.close()
