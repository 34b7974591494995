"""Jobs and their event logs, and the fan-out of events to any number of watchers.

Every event a job produces is appended here with the next seq; a watcher reads the log from any
seq and then waits for more, so watchers never slow the job or each other (each one holds only
an index into the shared log), and a watcher that reconnects with its last seq gets every later
event exactly once, in order. Every change is written through to a ``JobStore`` (SQLite in
``--state-dir``) before anyone sees it, and a new ``JobBook`` starts from what the store holds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from shared import errors
from shared.ids import check_job_id
from shared.jobs import EventKind, JobError, JobEvent, JobState, TrainResult
from shared.spec import TrainingRequest

from .store import JobStore, MemoryJobStore, StoredJob


@dataclass
class JobRecord:
    job_id: str
    request: TrainingRequest
    upload_token: str
    created_at: float
    state: JobState = JobState.QUEUED
    node: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    percentage: float = 0.0
    message: str = ""
    attempt: int = 0
    result: TrainResult | None = None
    error: JobError | None = None
    events: list[JobEvent] = field(default_factory=list)
    cancel_requested: str = ""
    node_seq: int = 0
    """The last trainer-side seq relayed (``Trainer.Attach`` resumes after it)."""
    lost_node_reason: str = ""
    """Why the job's last node was lost, when it is being retried (not persisted)."""
    cancel_requested_at: float = 0.0
    """monotonic() of the CancelJob call, for the cancel-latency metric (not persisted)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        return len(self.events)


def job_key(record: JobRecord) -> tuple[float, str]:
    """The order of ListJobs (newest first) and the key of its page tokens."""
    return (record.created_at, record.job_id)


class JobBook:
    def __init__(self, store: JobStore | None = None) -> None:
        self._store: JobStore = store if store is not None else MemoryJobStore()
        self._jobs: dict[str, JobRecord] = {}
        self._by_request_id: dict[str, str] = {}
        self.closing = False
        """Set by ``close``: the orchestrator is stopping and serves no watch."""
        self.events_appended = 0
        """Events appended since start (the events/s metric)."""
        self.on_cancelled: Callable[[float], None] | None = None
        """Called with the seconds from CancelJob to the CANCELLED event."""
        self.on_finished: Callable[[JobRecord], None] | None = None
        """Called with each job that reaches a terminal state, once it is stored."""
        for stored in self._store.load():
            record = JobRecord(
                job_id=stored.job_id,
                request=stored.request,
                upload_token=stored.upload_token,
                created_at=stored.created_at,
                node=stored.node,
                attempt=stored.attempt,
                cancel_requested=stored.cancel_requested,
                node_seq=stored.node_seq,
            )
            self._jobs[record.job_id] = record
            if stored.request_id:
                self._by_request_id[stored.request_id] = record.job_id
            for event in stored.events:
                self._fold(record, event)

    def by_request_id(self, request_id: str) -> JobRecord | None:
        """The job a ``request_id`` was first submitted with, if any."""
        job_id = self._by_request_id.get(request_id) if request_id else None
        return self._jobs.get(job_id) if job_id else None

    def unfinished(self) -> list[JobRecord]:
        """Jobs that were not terminal when the store was loaded, oldest first."""
        return sorted(
            (r for r in self._jobs.values() if not r.state.terminal), key=lambda r: r.created_at
        )

    def save_placement(self, record: JobRecord) -> None:
        """Persist where the job runs (node, attempt, relayed seq) and any pending cancel."""
        self._store.update_placement(
            record.job_id,
            node=record.node,
            attempt=record.attempt,
            node_seq=record.node_seq,
            cancel_requested=record.cancel_requested,
        )

    def create(self, request: TrainingRequest) -> tuple[JobRecord, bool]:
        """A new QUEUED job, or the existing one for a repeated ``request_id`` (created=False)."""
        if request.request_id:
            existing = self._by_request_id.get(request.request_id)
            if existing is not None:
                record = self._jobs[existing]
                if record.request != request:
                    raise errors.AlreadyExistsError(
                        f"request_id {request.request_id!r} was already used for job "
                        f"{existing} with a different request; use a new request_id",
                        field="request_id",
                    )
                return record, False
        job_id = uuid.uuid4().hex[:16]
        record = JobRecord(
            job_id=job_id,
            request=request,
            upload_token=secrets.token_urlsafe(32),
            created_at=time.time(),
        )
        queued = JobEvent(
            job_id=job_id,
            seq=1,
            time=record.created_at,
            state=JobState.QUEUED,
            kind=EventKind.LIFECYCLE,
            message="Queued",
        )
        self._store.insert_job(
            StoredJob(
                job_id=job_id,
                request_id=request.request_id,
                request=request,
                upload_token=record.upload_token,
                created_at=record.created_at,
                node="",
                attempt=0,
                node_seq=0,
                cancel_requested="",
                events=(queued,),
            )
        )
        self._jobs[job_id] = record
        if request.request_id:
            self._by_request_id[request.request_id] = job_id
        self._fold(record, queued)
        return record, True

    def get(self, job_id: str) -> JobRecord:
        check_job_id(job_id)
        record = self._jobs.get(job_id)
        if record is None:
            raise errors.NotFoundError(
                f"no job {job_id!r}; list jobs with ListJobs", field="job_id"
            )
        return record

    def listing(self, states: Sequence[JobState]) -> list[JobRecord]:
        """Jobs in ``states`` (all when empty), newest first: by (created_at, job_id) descending,
        the key ListJobs pages by."""
        jobs = sorted(self._jobs.values(), key=job_key, reverse=True)
        return [j for j in jobs if j.state in states] if states else jobs

    def append(self, job_id: str, event: JobEvent, *, node_seq: int | None = None) -> JobEvent:
        """Add an event with the next seq (persisted first), fold it into the job's summary.

        ``node_seq`` is the trainer-side seq of a relayed event, kept for ``Trainer.Attach``.
        """
        record = self._jobs[job_id]
        if record.state.terminal:
            return record.events[-1]
        percentage = max(record.percentage, event.percentage)
        event = replace(
            event,
            job_id=job_id,
            seq=record.last_seq + 1,
            percentage=percentage,
            node=event.node or record.node,
        )
        self._store.append_event(job_id, event, node_seq)
        if node_seq is not None:
            record.node_seq = node_seq
        self._fold(record, event)
        self.events_appended += 1
        if (
            event.state is JobState.CANCELLED
            and record.cancel_requested_at
            and self.on_cancelled is not None
        ):
            self.on_cancelled(time.monotonic() - record.cancel_requested_at)
        if event.terminal and self.on_finished is not None:
            self.on_finished(record)
        return event

    def counts(self) -> dict[JobState, int]:
        """Jobs per state."""
        out = dict.fromkeys(JobState, 0)
        for record in self._jobs.values():
            out[record.state] += 1
        return out

    def _fold(self, record: JobRecord, event: JobEvent) -> None:
        percentage = max(record.percentage, event.percentage)
        record.events.append(event)
        record.state = event.state
        record.percentage = percentage
        record.message = event.message
        if event.state is JobState.RUNNING and not record.started_at:
            record.started_at = event.time
        if event.state.terminal:
            record.finished_at = event.time
            record.result = event.result
            record.error = event.error
        changed, record.changed = record.changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """End every watch now, and refuse new ones: a stopping orchestrator holds no stream
        open (a watcher is not work to drain; its job goes on, and it resumes after the last
        seq it got once the orchestrator is back)."""
        self.closing = True
        for record in self._jobs.values():
            changed, record.changed = record.changed, asyncio.Event()
            changed.set()

    def _closed(self, job_id: str, after_seq: int) -> errors.UnavailableError:
        return errors.UnavailableError(
            f"the orchestrator is shutting down; job {job_id} keeps its events: watch it again "
            f"with after_seq {after_seq} once the orchestrator is back",
            reason="SHUTTING_DOWN",
        )

    async def watch(self, job_id: str, after_seq: int) -> AsyncIterator[JobEvent]:
        record = self.get(job_id)
        if after_seq < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="after_seq")
        if after_seq > record.last_seq:
            raise errors.OutOfRangeError(
                f"job {job_id} has {record.last_seq} events; after_seq {after_seq} is beyond them",
                field="after_seq",
            )
        index = after_seq
        while True:
            changed = record.changed
            while index < len(record.events):
                event = record.events[index]
                index += 1
                yield event
            if record.state.terminal:
                return
            if self.closing:
                raise self._closed(job_id, index)
            await changed.wait()
