"""Jobs and their event logs: the one owner of job state, and the fan-out of events to watchers.

Every change to a job goes through ``JobBook``: ``create``, ``place``, ``retry``,
``return_to_queue``, ``request_cancel`` and ``append`` change the job in memory and hand the
change to the store writer (``store_writer.py``), which commits it off the event loop, grouping
what queued up into one transaction. Records handed out are frozen snapshots.

The durability promise. A watcher is given an event only once the store has committed it, so
whatever a watcher has seen survives an orchestrator crash (kill -9), and a watcher that resumes
with its last seq never finds it missing or different. (A commit is as durable as the store
makes it: SQLite's WAL with ``synchronous=NORMAL`` may lose its last commits to a power cut;
PostgreSQL's default flushes each commit to the server's disk.) A new job is committed before
``create``/``create_job`` returns (before SubmitJob or Train answers), and a placement is
committed before the dispatcher calls the trainer. What is not yet committed is what waits for
the writer (normally one batch: the writer lingers at most ``store_writer.LINGER_S`` for a batch
to fill, then commits): ``GetJob``/``ListJobs`` may already show it, as the book's state runs
that far ahead of the store, and a crash loses it. A trainer's events in it are sent again when
the restarted orchestrator re-attaches (``Trainer.Attach`` after the last committed trainer
seq), and the orchestrator's own notes (a waiting reason, a retry) are made again when they
still hold.

Memory. Unfinished jobs are held with their whole log; a finished job stays in memory only
among the ``recent`` most recently finished (so a watcher of a job that just ended reads from
memory), and is read back from the store on demand otherwise (``get``, ``watch``, ``listing``).
Start-up reads the unfinished jobs only.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace

from shared import errors
from shared.ids import check_job_id
from shared.job_requests import JobRequest
from shared.jobs import EventKind, JobEvent, JobState

from .job_record import JobRecord, LiveJob, job_key, record_from_row
from .store import (
    AppendEvent,
    InsertJob,
    JobKey,
    JobStore,
    MemoryJobStore,
    SetPlacement,
    StoredJob,
    Write,
)
from .store_writer import StoreWriter

__all__ = ["RECENT_FINISHED", "JobBook", "JobListing", "JobRecord", "job_key"]

RECENT_FINISHED = 256
"""Finished jobs kept in memory (most recently finished first out last)."""
STORE_PAGE = 500
"""Events or jobs read from the store at a time."""
FIRST_STORE_PAGE = 64
"""Jobs read from the store for the start of a listing (most listings want one page)."""


class JobListing:
    """``JobBook.listing``: re-iterable, lazy; truthy when it holds a job."""

    def __init__(self, book: JobBook, states: Sequence[JobState]) -> None:
        self._book = book
        self._states = tuple(states)

    def __iter__(self) -> Iterator[JobRecord]:
        return self._book.iter_jobs(self._states)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __getitem__(self, index: int) -> JobRecord:
        return list(self)[index]


class JobBook:
    def __init__(self, store: JobStore | None = None, *, recent: int = RECENT_FINISHED) -> None:
        self._store: JobStore = store if store is not None else MemoryJobStore()
        self._recent = recent
        self._jobs: dict[str, LiveJob] = {}
        """Unfinished jobs, and the ``recent`` last finished (``_finished``)."""
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._by_request_id: dict[str, str] = {}
        """request_id -> job_id of the jobs in memory (the store answers for the others)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[int, LiveJob | None]] = deque()
        """Tickets not yet published: the job whose next event the ticket commits, if any."""
        self._publish_scheduled = False
        self.closing = False
        """Set by ``close``: the orchestrator is stopping and serves no watch."""
        self.events_appended = 0
        """Events appended since start (the events/s metric)."""
        self.on_cancelled: Callable[[float], None] | None = None
        """Called with the seconds from CancelJob to the CANCELLED event."""
        self.on_finished: Callable[[JobRecord], None] | None = None
        """Called with each job that reaches a terminal state, once it is stored."""
        self._counts = self._store.count_states()
        for stored in self._store.load_unfinished():
            job = LiveJob(
                job_id=stored.job_id,
                request=stored.request,
                upload_token=stored.upload_token,
                created_at=stored.created_at,
                node=stored.node,
                attempt=stored.attempt,
                node_seq=stored.node_seq,
                cancel_requested=stored.cancel_requested,
            )
            for event in stored.events:
                job.add(event)
            job.published = len(job.events)
            self._remember(job)
        self._writer = StoreWriter(self._store, self._committed)

    # -- reading -----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        job = self._jobs.get(job_id)
        if job is not None:
            return job.record()
        row = self._store.get_job(job_id)
        if row is None:
            raise errors.NotFoundError(
                f"no job {job_id!r}; list jobs with ListJobs", field="job_id"
            )
        return record_from_row(row)

    async def fetch(self, job_id: str) -> JobRecord:
        """``get`` without blocking the event loop on a store read."""
        check_job_id(job_id)
        job = self._jobs.get(job_id)
        if job is not None:
            return job.record()
        return await asyncio.to_thread(self.get, job_id)

    def events(self, job_id: str, after_seq: int = 0) -> list[JobEvent]:
        """The job's events after ``after_seq`` (its committed and pending ones)."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job.events[after_seq:]
        out: list[JobEvent] = []
        while page := self._store.events(job_id, after_seq, STORE_PAGE):
            out.extend(page)
            after_seq = page[-1].seq
        return out

    def by_request_id(self, request_id: str) -> JobRecord | None:
        """The job a ``request_id`` was first submitted with, if any."""
        if not request_id:
            return None
        job_id = self._by_request_id.get(request_id)
        if job_id is not None and job_id in self._jobs:
            return self._jobs[job_id].record()
        row = self._store.find_request(request_id)
        return record_from_row(row) if row is not None else None

    def unfinished(self) -> list[JobRecord]:
        """Jobs not in a terminal state, oldest first."""
        jobs = (j for j in self._jobs.values() if not j.state.terminal)
        return [j.record() for j in sorted(jobs, key=lambda j: j.created_at)]

    def queued_since(self, job_id: str) -> float:
        """When the job last entered QUEUED (submitted, or re-queued for a retry): the start of
        its trailing run of QUEUED events. Event times are persisted, so a restart keeps it."""
        job = self._jobs[job_id]
        since = job.created_at
        for event in reversed(job.events):
            if event.state is not JobState.QUEUED:
                break
            since = event.time
        return since

    def listing(self, states: Sequence[JobState]) -> JobListing:
        """Jobs in ``states`` (all when empty), newest first by (created_at, job_id), the key
        ListJobs pages by: an iterable that reads the store lazily each time it is iterated
        (a page reads a few rows; ``len`` reads them all). ``list_jobs`` reads one page off the
        event loop."""
        return JobListing(self, states)

    def iter_jobs(
        self, states: Sequence[JobState], *, after: JobKey | None = None
    ) -> Iterator[JobRecord]:
        """Jobs in ``states`` (all when empty), newest first by (created_at, job_id), strictly
        after ``after``. Lazy: the jobs in memory as they are now, merged with the finished
        jobs read from the store a page at a time."""
        hot = sorted(
            (
                j.record()
                for j in list(self._jobs.values())
                if (not states or j.state in states)
                and (after is None or (j.created_at, j.job_id) < after)
            ),
            key=job_key,
            reverse=True,
        )
        return self._merge(hot, states, after)

    def _merge(
        self, hot: list[JobRecord], states: Sequence[JobState], after: JobKey | None
    ) -> Iterator[JobRecord]:
        index = 0
        cursor = after
        page = FIRST_STORE_PAGE
        while True:
            rows = self._store.list_jobs(states, cursor, page)
            for row in rows:
                key = (row.created_at, row.job_id)
                while index < len(hot) and job_key(hot[index]) > key:
                    yield hot[index]
                    index += 1
                if row.job_id not in self._jobs:  # memory answers for the jobs it holds
                    yield record_from_row(row)
            if len(rows) < page:
                break
            cursor = (rows[-1].created_at, rows[-1].job_id)
            page = STORE_PAGE
        yield from hot[index:]

    async def find_request(self, request_id: str) -> JobRecord | None:
        """``by_request_id`` without blocking the event loop on a store read."""
        job_id = self._by_request_id.get(request_id) if request_id else None
        if job_id is not None and job_id in self._jobs:
            return self._jobs[job_id].record()
        return await asyncio.to_thread(self.by_request_id, request_id)

    async def list_jobs(
        self, states: Sequence[JobState], *, after: JobKey | None, limit: int
    ) -> list[JobRecord]:
        """The first ``limit`` of ``iter_jobs(states, after=after)``, read off the event loop
        (a ListJobs page: ``after`` is the page token's key)."""

        def take() -> list[JobRecord]:
            out = []
            for record in self.iter_jobs(states, after=after):
                out.append(record)
                if len(out) >= limit:
                    break
            return out

        return await asyncio.to_thread(take)

    def counts(self) -> dict[JobState, int]:
        """Jobs per state."""
        return dict(self._counts)

    # -- changing a job ----------------------------------------------------------------------

    def create(self, request: JobRequest) -> tuple[JobRecord, bool]:
        """A new QUEUED job, committed, or the existing one for a repeated ``request_id``
        (created=False). Blocks the caller until the commit; ``create_job`` awaits it."""
        record, created, ticket = self._create(request, self.by_request_id(request.request_id))
        if created:
            try:
                self._writer.wait(ticket)
            except Exception:
                self._forget(record.job_id)
                raise
            self._publish(ticket)
        return record, created

    async def create_job(self, request: JobRequest) -> tuple[JobRecord, bool]:
        """``create`` without blocking the event loop (the request_id look-up in the store and
        the commit run off it)."""
        existing = None
        if request.request_id:
            job_id = self._by_request_id.get(request.request_id)
            if job_id is not None and job_id in self._jobs:
                existing = self._jobs[job_id].record()
            else:
                row = await asyncio.to_thread(self._store.find_request, request.request_id)
                existing = record_from_row(row) if row is not None else None
        record, created, ticket = self._create(request, existing)
        if created:
            try:
                await self._writer.flushed(ticket)
            except Exception:
                self._forget(record.job_id)
                raise
            self._publish(ticket)
        return record, created

    def _forget(self, job_id: str) -> None:
        """Drop a job whose insert the store refused."""
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._counts[job.state] -= 1
            if job.request_id:
                self._by_request_id.pop(job.request_id, None)

    def _create(
        self, request: JobRequest, existing: JobRecord | None
    ) -> tuple[JobRecord, bool, int]:
        if existing is not None:
            if existing.request != request:
                raise errors.AlreadyExistsError(
                    f"request_id {request.request_id!r} was already used for job "
                    f"{existing.job_id} with a different request; use a new request_id",
                    field="request_id",
                )
            return existing, False, 0
        job = LiveJob(
            job_id=uuid.uuid4().hex[:16],
            request=request,
            upload_token=secrets.token_urlsafe(32),
            created_at=time.time(),
        )
        queued = JobEvent(
            job_id=job.job_id,
            seq=1,
            time=job.created_at,
            state=JobState.QUEUED,
            kind=EventKind.LIFECYCLE,
            message="Queued",
        )
        job.add(queued)
        stored = StoredJob(
            job_id=job.job_id,
            request_id=request.request_id,
            request=request,
            upload_token=job.upload_token,
            created_at=job.created_at,
            node="",
            attempt=0,
            node_seq=0,
            cancel_requested="",
            events=(queued,),
            kind=request.kind.value,
        )
        self._remember(job)
        self._counts[JobState.QUEUED] += 1
        ticket = self._submit(InsertJob(stored), job)
        return job.record(), True, ticket

    def append(self, job_id: str, event: JobEvent, *, node_seq: int | None = None) -> JobEvent:
        """Add an event with the next seq, fold it into the job's summary, and queue it for the
        store; watchers get it once it is committed. A terminal job takes no more events.

        ``node_seq`` is the trainer-side seq of a relayed event, kept for ``Trainer.Attach``.
        """
        job = self._jobs[job_id]
        if job.events and job.events[-1].state.terminal:
            return job.events[-1]
        before = job.state
        event = replace(
            event,
            job_id=job_id,
            seq=len(job.events) + 1,
            percentage=max(job.percentage, event.percentage),
            node=event.node or job.node,
        )
        job.add(event)
        if node_seq is not None:
            job.node_seq = node_seq
        if event.state is not before:
            self._counts[before] -= 1
            self._counts[event.state] += 1
        self.events_appended += 1
        self._submit(AppendEvent(job_id, event, node_seq), job)
        return event

    def place(self, job_id: str, node: str) -> JobRecord:
        """The job starts an attempt on ``node`` (its trainer seq starts over)."""
        job = self._jobs[job_id]
        job.node, job.attempt, job.node_seq = node, job.attempt + 1, 0
        self._save_placement(job)
        return job.record()

    def retry(self, job_id: str, why: str) -> JobRecord:
        """The job's node was lost (``why``): it leaves the node to be placed again."""
        job = self._jobs[job_id]
        job.lost_node_reason = why
        job.node, job.node_seq = "", 0
        self._save_placement(job)
        return job.record()

    def return_to_queue(self, job_id: str) -> JobRecord:
        """The node refused the job for want of a slot: it leaves the node, and the attempt
        does not count."""
        job = self._jobs[job_id]
        job.node, job.attempt, job.node_seq = "", job.attempt - 1, 0
        self._save_placement(job)
        return job.record()

    def request_cancel(self, job_id: str, reason: str) -> JobRecord:
        """Note a CancelJob (its time for the cancel-latency metric); a job on a node keeps the
        reason (persisted) until its node confirms."""
        job = self._jobs[job_id]
        job.cancel_requested_at = time.monotonic()
        if job.node:
            job.cancel_requested = reason
            self._save_placement(job)
        else:
            job.touched()
        return job.record()

    def save_placement(self, record: JobRecord) -> None:
        """Set the job's node, attempt, trainer seq and pending cancel to ``record``'s and
        commit them (blocking; for tests and tools: the dispatcher uses ``place``/``retry``)."""
        job = self._jobs[record.job_id]
        job.node, job.attempt, job.node_seq = record.node, record.attempt, record.node_seq
        job.cancel_requested = record.cancel_requested
        self._writer.wait(self._save_placement(job))

    def _save_placement(self, job: LiveJob) -> int:
        job.touched()
        return self._submit(
            SetPlacement(job.job_id, job.node, job.attempt, job.node_seq, job.cancel_requested),
            None,
        )

    async def flushed(self) -> None:
        """Wait until every change made so far is committed (without blocking the loop)."""
        await self._writer.flushed()

    # -- the store writer and publishing -----------------------------------------------------

    def _submit(self, write: Write, job: LiveJob | None) -> int:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None
        ticket = self._writer.submit(write)
        self._pending.append((ticket, job if isinstance(write, AppendEvent | InsertJob) else None))
        if self._loop is None:  # no event loop (a script): commit now
            self._writer.wait(ticket)
            self._publish(ticket)
        return ticket

    def _committed(self, ticket: int) -> None:
        """On the writer's thread: hand the publishing to the event loop (one wake-up however
        many batches commit before the loop runs it)."""
        loop = self._loop
        if loop is not None and not self._publish_scheduled and not loop.is_closed():
            self._publish_scheduled = True
            loop.call_soon_threadsafe(self._publish_committed)

    def _publish_committed(self) -> None:
        self._publish_scheduled = False  # before reading: a later commit schedules again
        self._publish(self._writer.committed)

    def _publish(self, ticket: int) -> None:
        """Give watchers every event committed up to ``ticket``, in order."""
        woken: dict[str, LiveJob] = {}
        while self._pending and self._pending[0][0] <= ticket:
            _, job = self._pending.popleft()
            if job is None:
                continue
            job.published += 1
            woken[job.job_id] = job
        for job in woken.values():
            job.wake()
            event = job.events[job.published - 1]
            if event.state.terminal and job.published == len(job.events):
                self._finish(job, event)

    def _finish(self, job: LiveJob, event: JobEvent) -> None:
        if event.state is JobState.CANCELLED and job.cancel_requested_at and self.on_cancelled:
            self.on_cancelled(time.monotonic() - job.cancel_requested_at)
        self._finished[job.job_id] = None
        while len(self._finished) > self._recent:
            old, _ = self._finished.popitem(last=False)
            evicted = self._jobs.pop(old, None)
            if evicted is not None and evicted.request_id:
                self._by_request_id.pop(evicted.request_id, None)
        if self.on_finished is not None:
            self.on_finished(job.record())

    def _remember(self, job: LiveJob) -> None:
        self._jobs[job.job_id] = job
        if job.request_id:
            self._by_request_id[job.request_id] = job.job_id

    # -- watching ----------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, then end every watch now, and refuse new ones: a stopping
        orchestrator holds no stream open (a watcher is not work to drain; its job goes on,
        and it resumes after the last seq it got once the orchestrator is back)."""
        self.closing = True
        self._writer.close()
        self._publish(self._writer.committed)
        for job in self._jobs.values():
            job.wake()

    def _closed(self, job_id: str, after_seq: int) -> errors.UnavailableError:
        return errors.UnavailableError(
            f"the orchestrator is shutting down; job {job_id} keeps its events: watch it again "
            f"with after_seq {after_seq} once the orchestrator is back",
            reason="SHUTTING_DOWN",
        )

    async def watch(self, job_id: str, after_seq: int) -> AsyncIterator[JobEvent]:
        record = await self.fetch(job_id)
        if after_seq < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="after_seq")
        if after_seq > record.last_seq:
            raise errors.OutOfRangeError(
                f"job {job_id} has {record.last_seq} events; after_seq {after_seq} is beyond them",
                field="after_seq",
            )
        job = self._jobs.get(job_id)
        if job is None:  # finished and evicted: its whole log is in the store
            index = after_seq
            while page := await asyncio.to_thread(self._store.events, job_id, index, STORE_PAGE):
                for event in page:
                    yield event
                index = page[-1].seq
            return
        index = after_seq
        while True:
            changed = job.changed
            while index < job.published:
                event = job.events[index]
                index += 1
                yield event
            if index and job.events[index - 1].state.terminal:
                return
            if self.closing:
                raise self._closed(job_id, index)
            await changed.wait()
