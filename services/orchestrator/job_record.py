"""A job as the job book hands it out: a read-only snapshot, and the book's private live state.

``JobRecord`` is frozen: code outside ``JobBook`` reads it and asks the book to change the job
(``place``, ``retry``, ``request_cancel``, ``append`` …), so one place changes a job and persists
it. A record is a snapshot of the moment it was taken; take a new one (``JobBook.get``) to see
later changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.job_requests import JobRequest
from shared.jobs import JobError, JobEvent, JobState, TrainResult
from shared.results import OptimizerProgress

from .store import JobRow


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    request: JobRequest
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
    last_seq: int = 0
    cancel_requested: str = ""
    node_seq: int = 0
    """The last trainer-side seq relayed (``Trainer.Attach`` resumes after it)."""
    lost_node_reason: str = ""
    """Why the job's last node was lost, when it is being retried (not persisted)."""
    cancel_requested_at: float = 0.0
    """monotonic() of the CancelJob call, for the cancel-latency metric (not persisted)."""
    last_event: JobEvent | None = None
    """The job's latest event (its result or error when terminal)."""
    progress: JobEvent | None = None
    """The latest event that says where the pipeline is (step, ETA): a poller's snapshot."""
    optimizer: OptimizerProgress | None = None
    """The latest finished trial's progress (optimization jobs)."""

    @property
    def kind(self) -> str:
        """What the job runs (``JobKind``'s value: ``train``, ``backtest``, ``optimize``)."""
        return self.request.kind.value


def job_key(record: JobRecord) -> tuple[float, str]:
    """The order of ListJobs (newest first) and the key of its page tokens."""
    return (record.created_at, record.job_id)


def record_from_row(row: JobRow) -> JobRecord:
    """The record of a job read back from the store (a finished job no longer in memory)."""
    last = row.last_event
    terminal = last is not None and last.state.terminal
    return JobRecord(
        job_id=row.job_id,
        request=row.request,
        upload_token=row.upload_token,
        created_at=row.created_at,
        state=row.state,
        node=row.node,
        started_at=row.started_at,
        finished_at=last.time if last is not None and terminal else 0.0,
        percentage=last.percentage if last is not None else 0.0,
        message=last.message if last is not None else "",
        attempt=row.attempt,
        result=last.result if last is not None and terminal else None,
        error=last.error if last is not None and terminal else None,
        last_seq=row.last_seq,
        cancel_requested=row.cancel_requested,
        node_seq=row.node_seq,
        last_event=last,
        progress=last,
    )


class LiveJob:
    """A job in memory: every event of its log, how many are committed (and so shown to
    watchers), and the fields its record is built from. Only ``JobBook`` changes it."""

    __slots__ = (
        "_record",
        "attempt",
        "cancel_requested",
        "cancel_requested_at",
        "changed",
        "created_at",
        "events",
        "job_id",
        "lost_node_reason",
        "node",
        "node_seq",
        "optimizer",
        "progress",
        "published",
        "request",
        "request_id",
        "started_at",
        "upload_token",
    )

    def __init__(
        self,
        *,
        job_id: str,
        request: JobRequest,
        upload_token: str,
        created_at: float,
        node: str = "",
        attempt: int = 0,
        node_seq: int = 0,
        cancel_requested: str = "",
    ) -> None:
        self.job_id = job_id
        self.request = request
        self.request_id = request.request_id
        self.upload_token = upload_token
        self.created_at = created_at
        self.node = node
        self.attempt = attempt
        self.node_seq = node_seq
        self.cancel_requested = cancel_requested
        self.lost_node_reason = ""
        self.cancel_requested_at = 0.0
        self.started_at = 0.0
        self.events: list[JobEvent] = []
        self.progress: JobEvent | None = None
        self.optimizer: OptimizerProgress | None = None
        self.published = 0
        """Events committed to the store: watchers are given ``events[:published]``."""
        self.changed = asyncio.Event()
        """Set (and replaced) when more events are published, or the book closes."""
        self._record: JobRecord | None = None

    @property
    def state(self) -> JobState:
        return self.events[-1].state if self.events else JobState.QUEUED

    @property
    def message(self) -> str:
        return self.events[-1].message if self.events else ""

    @property
    def percentage(self) -> float:
        return self.events[-1].percentage if self.events else 0.0

    def add(self, event: JobEvent) -> None:
        self.events.append(event)
        if event.step_total:
            self.progress = event
        if event.optimizer is not None:
            self.optimizer = event.optimizer
        if event.state is JobState.RUNNING and not self.started_at:
            self.started_at = event.time
        self._record = None

    def touched(self) -> None:
        """A field changed: the next ``record()`` is built afresh."""
        self._record = None

    def wake(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def record(self) -> JobRecord:
        """A snapshot (built once per change, however many readers ask)."""
        if self._record is None:
            last = self.events[-1] if self.events else None
            terminal = last is not None and last.state.terminal
            self._record = JobRecord(
                job_id=self.job_id,
                request=self.request,
                upload_token=self.upload_token,
                created_at=self.created_at,
                state=self.state,
                node=self.node,
                started_at=self.started_at,
                finished_at=last.time if last is not None and terminal else 0.0,
                percentage=self.percentage,
                message=self.message,
                attempt=self.attempt,
                result=last.result if last is not None and terminal else None,
                error=last.error if last is not None and terminal else None,
                last_seq=len(self.events),
                cancel_requested=self.cancel_requested,
                node_seq=self.node_seq,
                lost_node_reason=self.lost_node_reason,
                cancel_requested_at=self.cancel_requested_at,
                last_event=last,
                progress=self.progress,
                optimizer=self.optimizer,
            )
        return self._record
