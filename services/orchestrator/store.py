"""Where jobs and their events live across restarts: the store interface and its versions.

``JobBook`` keeps the working set in memory for fan-out and writes every change through to a
``JobStore`` in one transaction per change, so a killed orchestrator restarts with every job and
every event it had acknowledged. Three stores implement the same five methods, and one contract
test suite (``tests/integration/test_store_contract.py``) runs against each: ``MemoryJobStore``
(this process only), ``SqliteJobStore`` (the embedded default, a file under ``--state-dir``) and
``PostgresJobStore`` (``store_postgres.py``: job history on a database server). ``--store URL``
picks one (``parse_store_url``).

SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit survives a process crash (kill -9)
— what a restart needs; a power cut may lose the last few milliseconds of commits, which the
trainer's own event log (``Trainer.Attach``) makes good. Requests and events are stored as their
protobuf encodings, so the store never drifts from the wire contract.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit

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


class StoreIntegrityError(ValueError):
    """A write the store refuses, the same way in every store: a ``job_id`` or non-empty
    ``request_id`` already stored, an event seq the job already has, or an event or placement
    for a job the store does not hold."""


class MemoryJobStore:
    """Keeps jobs and events in this process only: the orchestrator forgets them when it stops
    (tests, ``--store memory:``, embedding without a state directory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, StoredJob] = {}
        """Insertion order is load order (created_at breaks no ties here: jobs are inserted in
        creation order)."""
        self._events: dict[str, list[JobEvent]] = {}
        self._request_ids: set[str] = set()

    def insert_job(self, job: StoredJob) -> None:
        with self._lock:
            if job.job_id in self._jobs:
                raise StoreIntegrityError(f"job {job.job_id} is already stored")
            if job.request_id and job.request_id in self._request_ids:
                raise StoreIntegrityError(f"request_id {job.request_id!r} is already stored")
            _check_seqs(job.job_id, 0, job.events)
            self._jobs[job.job_id] = replace(job, events=())
            self._events[job.job_id] = list(job.events)
            if job.request_id:
                self._request_ids.add(job.request_id)

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        with self._lock:
            events = self._events.get(job_id)
            if events is None:
                raise StoreIntegrityError(f"no job {job_id} in the store")
            _check_seqs(job_id, len(events), (event,))
            events.append(event)
            if node_seq is not None:
                self._jobs[job_id] = replace(self._jobs[job_id], node_seq=node_seq)

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise StoreIntegrityError(f"no job {job_id} in the store")
            self._jobs[job_id] = replace(
                job,
                node=node,
                attempt=attempt,
                node_seq=node_seq,
                cancel_requested=cancel_requested,
            )

    def load(self) -> list[StoredJob]:
        with self._lock:
            # sorted() is stable: jobs created in the same instant keep their insertion order
            jobs = sorted(self._jobs.values(), key=lambda j: j.created_at)
            return [replace(j, events=tuple(self._events[j.job_id])) for j in jobs]

    def close(self) -> None:
        pass


def _check_seqs(job_id: str, last: int, events: Iterable[JobEvent]) -> None:
    for event in events:
        if event.seq <= last:
            raise StoreIntegrityError(f"job {job_id} already has an event with seq {event.seq}")
        last = event.seq


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
        try:
            self._insert_job(job, request)
        except sqlite3.IntegrityError as exc:
            self._states.pop(job.job_id, None)
            raise StoreIntegrityError(f"job {job.job_id}: {exc}") from exc

    def _insert_job(self, job: StoredJob, request: bytes) -> None:
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
        try:
            with self._transaction():
                self._insert_event(job_id, event)
                if node_seq is not None:
                    self._db.execute(
                        "UPDATE jobs SET node_seq=? WHERE job_id=?", (node_seq, job_id)
                    )
        except sqlite3.IntegrityError as exc:
            self._states.pop(job_id, None)  # the rolled-back state write may have been cached
            raise StoreIntegrityError(f"job {job_id}, event {event.seq}: {exc}") from exc

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        with self._transaction():
            updated = self._db.execute(
                "UPDATE jobs SET node=?, attempt=?, node_seq=?, cancel_requested=? WHERE job_id=?",
                (node, attempt, node_seq, cancel_requested, job_id),
            ).rowcount
        if not updated:
            raise StoreIntegrityError(f"no job {job_id} in the store")

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
    return SqliteJobStore(parsed.path)
