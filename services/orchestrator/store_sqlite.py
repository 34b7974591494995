"""The job store in one SQLite file: the embedded default (``jobs.sqlite3`` under ``--state-dir``).

WAL mode with ``synchronous=NORMAL``: a commit survives a process crash (kill -9), which is what
a restart needs; a power cut may lose the last commits before the WAL's next checkpoint. Two
connections: the writer's (``write``: one transaction per batch, from the store writer's thread)
and a reader's (WAL readers see the last commit and never wait for the writer).

The schema is ``migrations/sqlite/NNNN_name.sql``, applied in order at open; the version reached
is ``meta.schema``. Stores written before versioned migrations (``meta.schema`` 1, created by
the first release's inline schema) carry on from version 1.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.jobs import JobEvent, JobState

from .schema import MIGRATIONS_ROOT, fill_started_at, migrations, newer_schema
from .store import (
    STATE_FILE_MODE,
    TERMINAL_STATES,
    AppendEvent,
    InsertJob,
    JobKey,
    JobRow,
    SetPlacement,
    StoredJob,
    StoreIntegrityError,
    Write,
    decode_event,
    decode_request,
    encode_event,
    encode_request,
    secure_file,
    secure_state_dir,
)

MIGRATIONS_DIR = MIGRATIONS_ROOT / "sqlite"
SCHEMA_VERSION = len(migrations(MIGRATIONS_DIR))
_ROW = (
    "job_id, request_id, kind, request, upload_token, created_at, node, attempt, node_seq,"
    " cancel_requested, state, last_seq, coalesce(started_at, 0),"
    " (SELECT event FROM events e WHERE e.job_id = jobs.job_id AND e.seq = jobs.last_seq)"
)
_UNFINISHED = tuple(s.value for s in JobState if s not in TERMINAL_STATES)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class SqliteJobStore:
    """Jobs and events in one SQLite file; every ``write`` is one transaction."""

    def __init__(self, path: Path) -> None:
        secure_state_dir(path.parent)
        secure_file(path)
        for suffix in ("-wal", "-shm"):  # left by an earlier run with other modes
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(STATE_FILE_MODE)
        self.path = path
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._db = _connect(path)
        self._migrate()
        self._reader = _connect(path)

    def _migrate(self) -> None:
        available = migrations(MIGRATIONS_DIR)
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        current = int(row[0]) if row is not None else 0
        if current > len(available):
            raise newer_schema(str(self.path), current, len(available))
        for step in available[current:]:
            # One transaction: the step and the version it reaches commit together.
            db.executescript(
                f"BEGIN IMMEDIATE;\n{step.sql}\n"
                f"INSERT INTO meta(key, value) VALUES('schema', '{step.version:d}')"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value;\nCOMMIT;"
            )
        unknown = [r[0] for r in db.execute("SELECT job_id FROM jobs WHERE started_at IS NULL")]
        if unknown:
            with self._transaction():
                fill_started_at(unknown, self._events_from, self._save_started)

    def _events_from(self, job_id: str) -> Iterator[JobEvent]:
        cursor = self._db.execute("SELECT event FROM events WHERE job_id=? ORDER BY seq", (job_id,))
        for (blob,) in cursor:
            yield decode_event(blob)

    def _save_started(self, job_id: str, started: float) -> None:
        self._db.execute("UPDATE jobs SET started_at=? WHERE job_id=?", (started, job_id))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # -- writes ------------------------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        touched: dict[str, list[object]] = {}  # job_id -> [state, last_seq, node_seq, started]
        try:
            with self._transaction():
                for write in writes:
                    if isinstance(write, AppendEvent):
                        self._insert_event(write.job_id, write.event, write.node_seq, touched)
                    elif isinstance(write, InsertJob):
                        self._insert_job(write.job, touched)
                    else:
                        self._set_placement(write)
                        if write.job_id in touched:  # a later summary must not undo it
                            touched[write.job_id][2] = write.node_seq
                for job_id, (state, last_seq, node_seq, started) in touched.items():
                    updated = self._db.execute(
                        "UPDATE jobs SET state=?, last_seq=?, node_seq=coalesce(?, node_seq),"
                        " started_at=CASE WHEN started_at=0 THEN ? ELSE started_at END"
                        " WHERE job_id=?",
                        (state, last_seq, node_seq, started, job_id),
                    ).rowcount
                    if not updated:
                        raise StoreIntegrityError(f"no job {job_id} in the store")
        except sqlite3.IntegrityError as exc:
            raise StoreIntegrityError(str(exc)) from exc

    def _insert_job(self, job: StoredJob, touched: dict[str, list[object]]) -> None:
        kind, request = encode_request(job.request)
        self._db.execute(
            "INSERT INTO jobs(job_id, request_id, kind, request, upload_token, created_at, state,"
            " node, attempt, node_seq, cancel_requested, last_seq, started_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,0,0)",
            (
                job.job_id,
                job.request_id,
                kind,
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
            self._insert_event(job.job_id, event, None, touched)

    def _insert_event(
        self,
        job_id: str,
        event: JobEvent,
        node_seq: int | None,
        touched: dict[str, list[object]],
    ) -> None:
        self._db.execute(
            "INSERT INTO events(job_id, seq, event) VALUES (?,?,?)",
            (job_id, event.seq, encode_event(event)),
        )
        summary = touched.get(job_id)
        if summary is None:
            summary = touched[job_id] = [event.state.value, event.seq, None, 0.0]
        summary[0], summary[1] = event.state.value, event.seq
        if node_seq is not None:
            summary[2] = node_seq
        if event.state is JobState.RUNNING and not summary[3]:
            summary[3] = event.time

    def _set_placement(self, write: SetPlacement) -> None:
        updated = self._db.execute(
            "UPDATE jobs SET node=?, attempt=?, node_seq=?, cancel_requested=? WHERE job_id=?",
            (write.node, write.attempt, write.node_seq, write.cancel_requested, write.job_id),
        ).rowcount
        if not updated:
            raise StoreIntegrityError(f"no job {write.job_id} in the store")

    def insert_job(self, job: StoredJob) -> None:
        self.write([InsertJob(job)])

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        self.write([AppendEvent(job_id, event, node_seq)])

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        self.write([SetPlacement(job_id, node, attempt, node_seq, cancel_requested)])

    # -- reads -------------------------------------------------------------------------------

    def _load(self, where: str, args: Sequence[object]) -> list[StoredJob]:
        with self._read_lock:
            db = self._reader
            db.execute("BEGIN")  # one snapshot for the jobs and their events
            try:
                jobs = db.execute(
                    "SELECT job_id, request_id, kind, request, upload_token, created_at, node,"
                    f" attempt, node_seq, cancel_requested FROM jobs {where}"
                    " ORDER BY created_at, rowid",
                    args,
                ).fetchall()
                events: dict[str, list[JobEvent]] = {}
                for job_id, *_ in jobs:
                    events[job_id] = [
                        decode_event(blob)
                        for (blob,) in db.execute(
                            "SELECT event FROM events WHERE job_id=? ORDER BY seq", (job_id,)
                        )
                    ]
            finally:
                db.execute("COMMIT")
        out = []
        for row in jobs:
            job_id, request_id, kind, request, token, created, node, attempt, node_seq, cancel = row
            out.append(
                StoredJob(
                    job_id=job_id,
                    request_id=request_id or "",
                    request=decode_request(kind, request),
                    upload_token=token,
                    created_at=created,
                    node=node,
                    attempt=attempt,
                    node_seq=node_seq,
                    cancel_requested=cancel,
                    events=tuple(events[job_id]),
                    kind=kind,
                )
            )
        return out

    def load(self) -> list[StoredJob]:
        return self._load("", ())

    def load_unfinished(self) -> list[StoredJob]:
        # IN over the unfinished states, not NOT IN the finished ones: the jobs_state index
        # finds the few unfinished rows without a scan of every job's row.
        marks = ",".join("?" * len(_UNFINISHED))
        return self._load(f"WHERE state IN ({marks})", _UNFINISHED)

    def _rows(self, where: str, args: Sequence[object]) -> list[JobRow]:
        with self._read_lock:
            found = self._reader.execute(f"SELECT {_ROW} FROM jobs {where}", args).fetchall()
        return [_row(r) for r in found]

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._rows("WHERE job_id=?", (job_id,))
        return rows[0] if rows else None

    def find_request(self, request_id: str) -> JobRow | None:
        if not request_id:
            return None
        rows = self._rows("WHERE request_id=?", (request_id,))
        return rows[0] if rows else None

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[JobEvent]:
        with self._read_lock:
            blobs = self._reader.execute(
                "SELECT event FROM events WHERE job_id=? AND seq>? ORDER BY seq LIMIT ?",
                (job_id, after_seq, limit),
            ).fetchall()
        return [decode_event(b) for (b,) in blobs]

    def list_jobs(
        self, states: Sequence[JobState], after: JobKey | None, limit: int
    ) -> list[JobRow]:
        clauses: list[str] = []
        args: list[object] = []
        if states:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(s.value for s in states)
        if after is not None:
            clauses.append("(created_at, job_id) < (?, ?)")
            args.extend(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(f"{where} ORDER BY created_at DESC, job_id DESC LIMIT ?", (*args, limit))

    def count_states(self) -> dict[JobState, int]:
        out = dict.fromkeys(JobState, 0)
        with self._read_lock:
            for state, count in self._reader.execute(
                "SELECT state, count(*) FROM jobs GROUP BY state"
            ):
                out[JobState(state)] += count
        return out

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()


def _row(r: Sequence[object]) -> JobRow:
    (job_id, request_id, kind, request, token, created, node, attempt, node_seq, cancel) = r[:10]
    state, last_seq, started, last = r[10:]
    assert isinstance(request, bytes)
    return JobRow(
        job_id=str(job_id),
        request_id=str(request_id or ""),
        kind=str(kind),
        request=decode_request(str(kind), request),
        upload_token=str(token),
        created_at=float(created),  # type: ignore[arg-type]
        node=str(node),
        attempt=int(attempt),  # type: ignore[call-overload]
        node_seq=int(node_seq),  # type: ignore[call-overload]
        cancel_requested=str(cancel),
        state=JobState(state),
        last_seq=int(last_seq),  # type: ignore[call-overload]
        started_at=float(started),  # type: ignore[arg-type]
        last_event=decode_event(last) if isinstance(last, bytes) else None,
    )


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
