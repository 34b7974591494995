"""Jobs and their event logs, and the fan-out of events to any number of watchers.

Every event a job produces is appended here with the next seq; a watcher reads the log from any
seq and then waits for more, so watchers never slow the job or each other (each one holds only
an index into the shared log), and a watcher that reconnects with its last seq gets every later
event exactly once, in order. This first cut keeps jobs in memory; the store interface for a
persistent (SQLite) implementation comes with the orchestrator's persistence work.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

from shared import errors
from shared.jobs import EventKind, JobError, JobEvent, JobState, TrainResult
from shared.spec import TrainingRequest


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
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        return len(self.events)


class JobBook:
    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._by_request_id: dict[str, str] = {}

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
        self._jobs[job_id] = record
        if request.request_id:
            self._by_request_id[request.request_id] = job_id
        self.append(
            job_id,
            JobEvent(
                job_id=job_id,
                seq=0,
                time=record.created_at,
                state=JobState.QUEUED,
                kind=EventKind.LIFECYCLE,
                message="Queued",
            ),
        )
        return record, True

    def get(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise errors.NotFoundError(
                f"no job {job_id!r}; list jobs with ListJobs", field="job_id"
            )
        return record

    def list(
        self, states: Sequence[JobState], page_size: int, page_token: str
    ) -> tuple[list[JobRecord], str]:
        """Newest first; the page token is the position after the last job returned."""
        if page_size < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="page_size")
        size = min(page_size or 50, 1000)
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode()).decode()) if page_token else 0
        except ValueError:
            raise errors.InvalidArgumentError(
                "not a token this server returned", field="page_token"
            ) from None
        jobs = sorted(self._jobs.values(), key=lambda r: r.created_at, reverse=True)
        if states:
            jobs = [j for j in jobs if j.state in states]
        page = jobs[start : start + size]
        end = start + len(page)
        token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(jobs) else ""
        return page, token

    def append(self, job_id: str, event: JobEvent) -> JobEvent:
        """Add an event with the next seq and fold it into the job's summary."""
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
        return event

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
            await changed.wait()
