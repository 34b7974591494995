"""Where jobs and their events live across restarts: a store interface and its SQLite version.

``JobBook`` keeps the working set in memory for fan-out and writes every change through to a
``JobStore`` in one transaction per change, so a killed orchestrator restarts with every job and
every event it had acknowledged. The interface is small on purpose: a PostgreSQL store (for an
orchestrator that must be highly available) implements the same five methods.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit survives a process crash (kill -9)
— what a restart needs; a power cut may lose the last few milliseconds of commits, which the
trainer's own event log (``Trainer.Attach``) makes good. Requests and events are stored as their
protobuf encodings, so the store never drifts from the wire contract.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.jobs import JobEvent, JobState
from shared.rpc import serde
from shared.rpc.v1 import progress_pb2, strategy_pb2
from shared.spec import TrainingRequest

SCHEMA_VERSION = 1
STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600
"""The job store holds every job's upload token: only the orchestrator's user may read it."""


def secure_state_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or make an existing one 0700."""
    path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != STATE_DIR_MODE:
        path.chmod(STATE_DIR_MODE)


def _secure_file(path: Path) -> None:
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
    request: TrainingRequest
    upload_token: str
    created_at: float
    node: str
    attempt: int
    node_seq: int
    """The last trainer-side seq relayed: where ``Trainer.Attach`` resumes after a restart."""
    cancel_requested: str
    events: tuple[JobEvent, ...]


class JobStore(Protocol):
    def insert_job(self, job: StoredJob) -> None: ...

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        """Add ``event`` (its seq is the next one) and, when given, the relayed trainer seq."""
        ...

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None: ...

    def load(self) -> Iterable[StoredJob]:
        """Every job, oldest first, with its events."""
        ...

    def close(self) -> None: ...


class MemoryJobStore:
    """Keeps nothing: the orchestrator forgets its jobs when it stops (tests, ``--state-dir``-less
    embedding)."""

    def insert_job(self, job: StoredJob) -> None:
        pass

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        pass

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        pass

    def load(self) -> Iterable[StoredJob]:
        return ()

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    request_id TEXT,
    request BLOB NOT NULL,
    upload_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    node_seq INTEGER NOT NULL DEFAULT 0,
    cancel_requested TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    seq INTEGER NOT NULL,
    event BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
"""


class SqliteJobStore:
    """Jobs and events in one SQLite file; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        secure_state_dir(path.parent)
        _secure_file(path)
        for suffix in ("-wal", "-shm"):  # left by an earlier run with other modes
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(STATE_FILE_MODE)
        self.path = path
        self._lock = threading.Lock()
        self._states: dict[str, JobState] = {}
        """Last state written per job (the jobs.state column is a query aid; load() derives
        states from the events)."""
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)  # idempotent DDL; executescript manages its own commit
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{path} was written by a newer trainwire (schema {row[0]}); upgrade"
                )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def insert_job(self, job: StoredJob) -> None:
        request = serde.request_to_proto(job.request).SerializeToString()
        with self._transaction():
            self._db.execute(
                "INSERT INTO jobs(job_id, request_id, request, upload_token, created_at, state,"
                " node, attempt, node_seq, cancel_requested) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    job.job_id,
                    job.request_id,
                    request,
                    job.upload_token,
                    job.created_at,
                    JobState.QUEUED.value,
                    job.node,
                    job.attempt,
                    job.node_seq,
                    job.cancel_requested,
                ),
            )
            for event in job.events:
                self._insert_event(job.job_id, event)

    def _insert_event(self, job_id: str, event: JobEvent) -> None:
        self._db.execute(
            "INSERT INTO events(job_id, seq, event) VALUES (?,?,?)",
            (job_id, event.seq, serde.event_to_proto(event).SerializeToString()),
        )
        if self._states.get(job_id) is not event.state:  # most events keep the state
            self._db.execute("UPDATE jobs SET state=? WHERE job_id=?", (event.state.value, job_id))
            self._states[job_id] = event.state

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        with self._transaction():
            self._insert_event(job_id, event)
            if node_seq is not None:
                self._db.execute("UPDATE jobs SET node_seq=? WHERE job_id=?", (node_seq, job_id))

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE jobs SET node=?, attempt=?, node_seq=?, cancel_requested=? WHERE job_id=?",
                (node, attempt, node_seq, cancel_requested, job_id),
            )

    def load(self) -> list[StoredJob]:
        with self._lock:
            jobs = self._db.execute(
                "SELECT job_id, request_id, request, upload_token, created_at, node, attempt,"
                " node_seq, cancel_requested FROM jobs ORDER BY created_at, rowid"
            ).fetchall()
            events: dict[str, list[JobEvent]] = {}
            for job_id, blob in self._db.execute(
                "SELECT job_id, event FROM events ORDER BY job_id, seq"
            ):
                message = progress_pb2.ProgressEvent.FromString(blob)
                events.setdefault(job_id, []).append(serde.event_from_proto(message))
        out = []
        for job_id, request_id, request, token, created, node, attempt, node_seq, cancel in jobs:
            out.append(
                StoredJob(
                    job_id=job_id,
                    request_id=request_id or "",
                    request=serde.request_from_proto(strategy_pb2.TrainRequest.FromString(request)),
                    upload_token=token,
                    created_at=created,
                    node=node,
                    attempt=attempt,
                    node_seq=node_seq,
                    cancel_requested=cancel,
                    events=tuple(events.get(job_id, ())),
                )
            )
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._lock.release()
