"""Where jobs and their events live across restarts: the store interface and its versions.

Three stores implement one interface, and one contract test suite
(``tests/integration/test_store_contract.py``) runs against each: ``MemoryJobStore`` (this
process only), ``SqliteJobStore`` (``store_sqlite.py``: the embedded default, a file under
``--state-dir``) and ``PostgresJobStore`` (``store_postgres.py``: job history on a database
server). ``--store URL`` picks one (``parse_store_url``).

Writes are ``Write`` values applied by ``write(writes)`` in one transaction: all or none.
``JobBook`` sends them through one writer thread that commits whatever has queued up at once
(``store_writer.py``). Reads serve what is not in memory: the unfinished jobs at start
(``load_unfinished``), and a finished job, its events or a page of jobs on demand (``get_job``,
``events``, ``list_jobs``, ``find_request``). Requests and events are stored as their protobuf
encodings, so the store never drifts from the wire contract; each job also carries its ``kind``
(what it runs: ``"train"``) and a summary (state, last seq, start time) for listing without
reading its events.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

from shared.job_requests import JobRequest
from shared.jobs import JobEvent, JobState
from shared.rpc import serde, serde_requests

STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600
"""The job store holds every job's upload token: only the orchestrator's user may read it."""
TERMINAL_STATES = tuple(s for s in JobState if s.terminal)


def secure_state_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or make an existing one 0700."""
    path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != STATE_DIR_MODE:
        path.chmod(STATE_DIR_MODE)


def secure_file(path: Path) -> None:
    """Create ``path`` as mode 0600 (before SQLite opens it: SQLite gives its -wal and -shm
    files the database file's mode), or make an existing one 0600."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, STATE_FILE_MODE))
    if stat.S_IMODE(path.stat().st_mode) != STATE_FILE_MODE:
        path.chmod(STATE_FILE_MODE)


@dataclass(frozen=True)
class StoredJob:
    """A job as the store keeps it; ``events`` in seq order."""

    job_id: str
    request_id: str
    request: JobRequest
    upload_token: str
    created_at: float
    node: str
    attempt: int
    node_seq: int
    """The last trainer-side seq relayed: where ``Trainer.Attach`` resumes after a restart."""
    cancel_requested: str
    events: tuple[JobEvent, ...]
    kind: str = "train"
    """What the job runs; the request is stored as that kind's encoding."""


@dataclass(frozen=True)
class JobRow:
    """A job read back without its events: its fields, and the summary its events give."""

    job_id: str
    request_id: str
    kind: str
    request: JobRequest
    upload_token: str
    created_at: float
    node: str
    attempt: int
    node_seq: int
    cancel_requested: str
    state: JobState
    last_seq: int
    started_at: float
    """The time of its first RUNNING event (0 if it never ran)."""
    last_event: JobEvent | None


@dataclass(frozen=True)
class InsertJob:
    job: StoredJob


@dataclass(frozen=True)
class AppendEvent:
    """Add ``event`` (its seq is the next one) and, when given, the relayed trainer seq."""

    job_id: str
    event: JobEvent
    node_seq: int | None = None


@dataclass(frozen=True)
class SetPlacement:
    job_id: str
    node: str
    attempt: int
    node_seq: int
    cancel_requested: str


Write = InsertJob | AppendEvent | SetPlacement
JobKey = tuple[float, str]
"""(created_at, job_id): the order of ``list_jobs`` (newest first) and of ListJobs pages."""


class JobStore(Protocol):
    def write(self, writes: Sequence[Write]) -> None:
        """Apply ``writes`` in order, in one transaction: all of them, or (raising) none."""
        ...

    def insert_job(self, job: StoredJob) -> None: ...

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None: ...

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None: ...

    def load(self) -> Iterable[StoredJob]:
        """Every job, oldest first, with its events."""
        ...

    def load_unfinished(self) -> list[StoredJob]:
        """The jobs not in a terminal state, oldest first, with their events."""
        ...

    def get_job(self, job_id: str) -> JobRow | None: ...

    def find_request(self, request_id: str) -> JobRow | None:
        """The job first submitted with ``request_id`` (non-empty), if any."""
        ...

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[JobEvent]:
        """Up to ``limit`` of the job's events after ``after_seq``, in seq order."""
        ...

    def list_jobs(
        self, states: Sequence[JobState], after: JobKey | None, limit: int
    ) -> list[JobRow]:
        """Up to ``limit`` jobs in ``states`` (all when empty), newest first by
        (created_at, job_id), strictly after ``after`` in that order."""
        ...

    def count_states(self) -> dict[JobState, int]:
        """Jobs per state (every state present)."""
        ...

    def close(self) -> None: ...


class StoreIntegrityError(ValueError):
    """A write the store refuses, the same way in every store: a ``job_id`` or non-empty
    ``request_id`` already stored, an event seq the job already has, or an event or placement
    for a job the store does not hold."""


def encode_request(request: JobRequest) -> tuple[str, bytes]:
    """(kind, bytes) of a request as the SQL stores keep it."""
    return serde_requests.request_to_stored(request)


def decode_request(kind: str, payload: bytes) -> JobRequest:
    return serde_requests.request_from_stored(kind, payload)


def encode_event(event: JobEvent) -> bytes:
    return serde.event_to_bytes(event)


def decode_event(payload: bytes) -> JobEvent:
    return serde.event_from_bytes(payload)


def summary(events: Sequence[JobEvent]) -> tuple[JobState, int, float, JobEvent | None]:
    """(state, last seq, started_at, last event) of a job's events."""
    started = next((e.time for e in events if e.state is JobState.RUNNING), 0.0)
    last = events[-1] if events else None
    return (last.state if last else JobState.QUEUED), len(events), started, last


class MemoryJobStore:
    """Keeps jobs and events in this process only: the orchestrator forgets them when it stops
    (tests, ``--store memory:``, embedding without a state directory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, StoredJob] = {}
        """Insertion order is load order (jobs are inserted in creation order)."""
        self._events: dict[str, list[JobEvent]] = {}
        self._request_ids: dict[str, str] = {}

    def write(self, writes: Sequence[Write]) -> None:
        with self._lock:
            self._check(writes)
            for write in writes:
                if isinstance(write, InsertJob):
                    job = write.job
                    self._jobs[job.job_id] = replace(job, events=())
                    self._events[job.job_id] = list(job.events)
                    if job.request_id:
                        self._request_ids[job.request_id] = job.job_id
                elif isinstance(write, AppendEvent):
                    self._events[write.job_id].append(write.event)
                    if write.node_seq is not None:
                        job = self._jobs[write.job_id]
                        self._jobs[write.job_id] = replace(job, node_seq=write.node_seq)
                else:
                    self._jobs[write.job_id] = replace(
                        self._jobs[write.job_id],
                        node=write.node,
                        attempt=write.attempt,
                        node_seq=write.node_seq,
                        cancel_requested=write.cancel_requested,
                    )

    def _check(self, writes: Sequence[Write]) -> None:
        """Refuse the whole batch before changing anything (all or none)."""
        last: dict[str, int] = {}
        request_ids: set[str] = set()
        for write in writes:
            if isinstance(write, InsertJob):
                job = write.job
                if job.job_id in self._jobs or job.job_id in last:
                    raise StoreIntegrityError(f"job {job.job_id} is already stored")
                if job.request_id and (
                    job.request_id in self._request_ids or job.request_id in request_ids
                ):
                    raise StoreIntegrityError(f"request_id {job.request_id!r} is already stored")
                check_seqs(job.job_id, 0, job.events)
                last[job.job_id] = job.events[-1].seq if job.events else 0
                request_ids.add(job.request_id)
                continue
            if write.job_id not in last:
                if write.job_id not in self._jobs:
                    raise StoreIntegrityError(f"no job {write.job_id} in the store")
                events = self._events[write.job_id]
                last[write.job_id] = events[-1].seq if events else 0
            if isinstance(write, AppendEvent):
                check_seqs(write.job_id, last[write.job_id], (write.event,))
                last[write.job_id] = write.event.seq

    def insert_job(self, job: StoredJob) -> None:
        self.write([InsertJob(job)])

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        self.write([AppendEvent(job_id, event, node_seq)])

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        self.write([SetPlacement(job_id, node, attempt, node_seq, cancel_requested)])

    def load(self) -> list[StoredJob]:
        with self._lock:
            # sorted() is stable: jobs created in the same instant keep their insertion order
            jobs = sorted(self._jobs.values(), key=lambda j: j.created_at)
            return [replace(j, events=tuple(self._events[j.job_id])) for j in jobs]

    def load_unfinished(self) -> list[StoredJob]:
        return [j for j in self.load() if not (j.events and j.events[-1].state.terminal)]

    def _row(self, job: StoredJob) -> JobRow:
        state, last_seq, started, last = summary(self._events[job.job_id])
        return JobRow(
            job_id=job.job_id,
            request_id=job.request_id,
            kind=job.kind,
            request=job.request,
            upload_token=job.upload_token,
            created_at=job.created_at,
            node=job.node,
            attempt=job.attempt,
            node_seq=job.node_seq,
            cancel_requested=job.cancel_requested,
            state=state,
            last_seq=last_seq,
            started_at=started,
            last_event=last,
        )

    def get_job(self, job_id: str) -> JobRow | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return self._row(job) if job is not None else None

    def find_request(self, request_id: str) -> JobRow | None:
        with self._lock:
            job_id = self._request_ids.get(request_id) if request_id else None
            return self._row(self._jobs[job_id]) if job_id else None

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[JobEvent]:
        with self._lock:
            return [e for e in self._events.get(job_id, ()) if e.seq > after_seq][:limit]

    def list_jobs(
        self, states: Sequence[JobState], after: JobKey | None, limit: int
    ) -> list[JobRow]:
        with self._lock:
            rows = [self._row(j) for j in self._jobs.values()]
        rows.sort(key=lambda r: (r.created_at, r.job_id), reverse=True)
        return [
            r
            for r in rows
            if (not states or r.state in states)
            and (after is None or (r.created_at, r.job_id) < after)
        ][:limit]

    def count_states(self) -> dict[JobState, int]:
        out = dict.fromkeys(JobState, 0)
        with self._lock:
            for events in self._events.values():
                out[events[-1].state if events else JobState.QUEUED] += 1
        return out

    def close(self) -> None:
        pass


def check_seqs(job_id: str, last: int, events: Iterable[JobEvent]) -> None:
    for event in events:
        if event.seq <= last:
            raise StoreIntegrityError(f"job {job_id} already has an event with seq {event.seq}")
        last = event.seq


# --- choosing a store ----------------------------------------------------------------------------

DEFAULT_SQLITE_NAME = "jobs.sqlite3"
STORE_URL_FORMS = (
    "sqlite:///ABS/PATH, sqlite:REL/PATH (under --state-dir), "
    "postgresql://USER@HOST:PORT/DB, or memory:"
)


@dataclass(frozen=True)
class StoreURL:
    """A parsed ``--store``: which store, and where."""

    kind: Literal["memory", "sqlite", "postgresql"]
    path: Path | None = None
    """The SQLite file (``kind == "sqlite"``)."""
    conninfo: str = ""
    """The PostgreSQL URL as given, password included (``kind == "postgresql"``): never log
    it; log ``redacted`` instead."""
    redacted: str = ""
    """The store as it may be logged: no password."""


_URL_PASSWORD = re.compile(r"(://[^/@?#]*?:)[^/@?#]*@")
_QUERY_PASSWORD = re.compile(r"((?:^|[?&\s])password=)[^&\s]*", re.IGNORECASE)


def redact_store_url(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@``, ``password=...``) replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))


def parse_store_url(url: str, state_dir: Path) -> StoreURL:
    """Parse ``--store``; ``""`` or ``sqlite`` is the default, ``jobs.sqlite3`` in ``state_dir``.

    Raises ``ValueError`` (its message names the forms, never a password) for anything else."""
    url = url.strip()
    if url in ("", "sqlite", "sqlite:"):
        path = state_dir / DEFAULT_SQLITE_NAME
        return StoreURL("sqlite", path=path, redacted=f"sqlite:{path}")
    if url == "memory:" or url == "memory":
        return StoreURL("memory", redacted="memory:")
    if url.startswith(("postgresql://", "postgres://")):
        return _parse_postgres(url)
    if url.startswith("sqlite:"):
        rest = url.removeprefix("sqlite:")
        if rest.startswith("//"):
            # sqlite:///abs/path: an empty authority, then an absolute path
            if not rest.startswith("///") or len(rest) == 3:
                raise ValueError(
                    f"--store {url!r}: a SQLite URL with // names an absolute path"
                    " (sqlite:///ABS/PATH); use sqlite:REL/PATH for one under --state-dir"
                )
            path = Path(rest[2:])
        else:
            path = Path(rest) if rest.startswith("/") else state_dir / rest
        if path.name in ("", ".", "..") or url.endswith("/"):
            raise ValueError(f"--store {url!r}: names a directory, not a SQLite file")
        return StoreURL("sqlite", path=path, redacted=f"sqlite:{path}")
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"--store {redact_store_url(scheme)!r}: not a job store URL; use {STORE_URL_FORMS}"
    )


def _parse_postgres(url: str) -> StoreURL:
    from psycopg import conninfo

    redacted = redact_store_url(url)
    try:
        conninfo.conninfo_to_dict(url)  # libpq's parser, which leaves ports to connect time
        netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
        for host in netloc.split(","):  # libpq takes host1:port1,host2:port2
            port = host.rsplit("]", 1)[-1].rpartition(":")[2] if ":" in host else ""
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                raise ValueError(port)
    except Exception:  # psycopg's message may quote the URL, password included
        raise ValueError(
            f"--store {redacted!r}: not a valid PostgreSQL URL"
            " (postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?OPTIONS])"
        ) from None
    return StoreURL("postgresql", conninfo=url, redacted=redacted)


def open_store(url: str, state_dir: Path) -> JobStore:
    """The job store ``--store`` names (see ``parse_store_url``), opened and ready."""
    parsed = parse_store_url(url, state_dir)
    if parsed.kind == "memory":
        return MemoryJobStore()
    if parsed.kind == "postgresql":
        from .store_postgres import PostgresJobStore

        return PostgresJobStore(parsed.conninfo)
    assert parsed.path is not None
    from .store_sqlite import SqliteJobStore

    return SqliteJobStore(parsed.path)
