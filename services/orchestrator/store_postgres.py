"""The job store on PostgreSQL: job history on a database server rather than one machine's disk.

Same contract as ``SqliteJobStore``. Two connections, each in autocommit mode and used under its
own lock: the writer's (``write``: one explicit transaction per batch, from the store writer's
thread) and a reader's. Requests and events are stored as their protobuf encodings (``bytea``).

Durability is the server's: with PostgreSQL's default ``synchronous_commit=on`` a batch is on
the server's disk before ``write`` returns; ``?options=-c%20synchronous_commit%3Doff`` in the URL
trades that for SQLite's promise (a commit survives an orchestrator crash; a database crash may
lose the last fraction of a second, which the trainer's own event log makes good). A connection
is not re-established if the server goes away: writes then fail until the orchestrator restarts.

The schema is the SQL files in ``migrations/postgres/`` (``NNNN_name.sql``), applied in order at
start, each in its own transaction that records its number in ``schema_version``; an advisory
lock makes orchestrators starting together apply each migration once. A database whose schema is
newer than this trainwire knows is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg

from shared.jobs import JobEvent, JobState

from . import schema
from .schema import MIGRATIONS_ROOT, Migration, fill_started_at, newer_schema
from .store import (
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
    redact_store_url,
)

MIGRATIONS_DIR = MIGRATIONS_ROOT / "postgres"
_MIGRATION_LOCK = 0x7472_6169_6E77  # pg_advisory_xact_lock key: "trainw"
CONNECT_TIMEOUT_S = 10
_ROW = (
    "job_id, request_id, kind, request, upload_token, created_at, node, attempt, node_seq,"
    " cancel_requested, state, last_seq, coalesce(started_at, 0),"
    " (SELECT event FROM events e WHERE e.job_id = jobs.job_id AND e.seq = jobs.last_seq)"
)
_UNFINISHED = [s.value for s in JobState if s not in TERMINAL_STATES]
Conn = psycopg.Connection[tuple[object, ...]]


class StoreUnreachableError(ValueError):
    """The PostgreSQL job store cannot be reached or refused us: the orchestrator cannot start
    (a ``ValueError``, so ``trainwire orchestrator`` exits 2 saying why). The message carries
    the URL without its password."""


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The PostgreSQL schema's migrations in order."""
    return schema.migrations(directory)


def migrate(conn: Conn, available: list[Migration]) -> int:
    """Apply the migrations ``conn``'s database lacks, each in one transaction; return the
    schema version it is at."""
    latest = available[-1].version if available else 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            current = int(str(row[0])) if row is not None else 0
            if current > latest:
                raise newer_schema("PostgreSQL", current, latest)
            if current == latest:
                return current
            step = available[current]  # versions are 1..N, so version current+1 is here
            conn.execute(step.sql.encode())
            conn.execute(
                "INSERT INTO schema_version(version, name) VALUES (%s, %s)",
                (step.version, step.name),
            )


class PostgresJobStore:
    """Jobs and events in a PostgreSQL database; every ``write`` is one transaction."""

    def __init__(self, conninfo: str) -> None:
        self.redacted = redact_store_url(conninfo)
        self._db = self._connect(conninfo)
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        try:
            self.schema_version = migrate(self._db, migrations())
            self._fill_started_at()
            self._reader = self._connect(conninfo)
        except BaseException:
            self._db.close()
            raise

    def _connect(self, conninfo: str) -> Conn:
        try:
            return psycopg.connect(
                conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="trainwire-orchestrator",
            )
        except psycopg.OperationalError as exc:
            raise StoreUnreachableError(
                f"cannot connect to the job store {self.redacted}: {exc}"
            ) from None

    def _fill_started_at(self) -> None:
        unknown = [
            str(r[0]) for r in self._db.execute("SELECT job_id FROM jobs WHERE started_at IS NULL")
        ]
        if unknown:
            with self._db.transaction():
                fill_started_at(unknown, self._events_from, self._save_started)

    def _events_from(self, job_id: str) -> Iterator[JobEvent]:
        with self._db.cursor() as cursor:
            for (blob,) in cursor.stream(
                "SELECT event FROM events WHERE job_id=%s ORDER BY seq", (job_id,)
            ):
                yield decode_event(_bytes(blob))

    def _save_started(self, job_id: str, started: float) -> None:
        self._db.execute("UPDATE jobs SET started_at=%s WHERE job_id=%s", (started, job_id))

    # -- writes ------------------------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        events: list[tuple[str, int, bytes]] = []
        touched: dict[str, list[object]] = {}  # job_id -> [state, last_seq, node_seq, started]
        try:
            with self._lock, self._db.transaction(), self._db.cursor() as cursor:
                for write in writes:
                    if isinstance(write, AppendEvent):
                        events.append(
                            _event_row(write.job_id, write.event, write.node_seq, touched)
                        )
                    elif isinstance(write, InsertJob):
                        self._flush_events(cursor, events)
                        self._insert_job(cursor, write.job, events, touched)
                    else:
                        self._flush_events(cursor, events)
                        cursor.execute(
                            "UPDATE jobs SET node=%s, attempt=%s, node_seq=%s,"
                            " cancel_requested=%s WHERE job_id=%s",
                            (
                                write.node,
                                write.attempt,
                                write.node_seq,
                                write.cancel_requested,
                                write.job_id,
                            ),
                        )
                        if not cursor.rowcount:
                            raise StoreIntegrityError(f"no job {write.job_id} in the store")
                        if write.job_id in touched:  # a later summary must not undo it
                            touched[write.job_id][2] = write.node_seq
                self._flush_events(cursor, events)
                if touched:
                    cursor.executemany(
                        "UPDATE jobs SET state=%s, last_seq=%s, node_seq=coalesce(%s, node_seq),"
                        " started_at=CASE WHEN started_at=0 THEN %s ELSE started_at END"
                        " WHERE job_id=%s",
                        [(*summary, job_id) for job_id, summary in touched.items()],
                    )
        except psycopg.errors.IntegrityError as exc:
            raise StoreIntegrityError(str(exc)) from exc

    @staticmethod
    def _flush_events(
        cursor: psycopg.Cursor[tuple[object, ...]], events: list[tuple[str, int, bytes]]
    ) -> None:
        if events:
            cursor.executemany("INSERT INTO events(job_id, seq, event) VALUES (%s,%s,%s)", events)
            events.clear()

    def _insert_job(
        self,
        cursor: psycopg.Cursor[tuple[object, ...]],
        job: StoredJob,
        events: list[tuple[str, int, bytes]],
        touched: dict[str, list[object]],
    ) -> None:
        kind, request = encode_request(job.request)
        cursor.execute(
            "INSERT INTO jobs(job_id, request_id, kind, request, upload_token, created_at,"
            " state, node, attempt, node_seq, cancel_requested, last_seq, started_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,0,0)",
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
            events.append(_event_row(job.job_id, event, None, touched))
        self._flush_events(cursor, events)

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
        with self._read_lock, self._reader.transaction():
            self._reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            jobs = self._reader.execute(
                "SELECT job_id, request_id, kind, request, upload_token, created_at, node,"
                f" attempt, node_seq, cancel_requested FROM jobs {where}"
                " ORDER BY created_at, inserted",
                args,
            ).fetchall()
            events: dict[str, list[JobEvent]] = {str(j[0]): [] for j in jobs}
            if jobs:
                for job_id, blob in self._reader.execute(
                    "SELECT job_id, event FROM events WHERE job_id = ANY(%s) ORDER BY job_id, seq",
                    (list(events),),
                ):
                    events[str(job_id)].append(decode_event(_bytes(blob)))
        out = []
        for (
            job_id,
            request_id,
            kind,
            request,
            token,
            created,
            node,
            attempt,
            node_seq,
            cancel,
        ) in jobs:
            key = str(job_id)
            out.append(
                StoredJob(
                    job_id=key,
                    request_id=str(request_id),
                    request=decode_request(str(kind), _bytes(request)),
                    upload_token=str(token),
                    created_at=float(str(created)),
                    node=str(node),
                    attempt=int(str(attempt)),
                    node_seq=int(str(node_seq)),
                    cancel_requested=str(cancel),
                    events=tuple(events[key]),
                    kind=str(kind),
                )
            )
        return out

    def load(self) -> list[StoredJob]:
        return self._load("", ())

    def load_unfinished(self) -> list[StoredJob]:
        return self._load("WHERE state = ANY(%s)", (_UNFINISHED,))  # the jobs_state index

    def _rows(self, where: str, args: Sequence[object]) -> list[JobRow]:
        with self._read_lock:
            found = self._reader.execute(f"SELECT {_ROW} FROM jobs {where}", args).fetchall()
        return [_row(r) for r in found]

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._rows("WHERE job_id=%s", (job_id,))
        return rows[0] if rows else None

    def find_request(self, request_id: str) -> JobRow | None:
        if not request_id:
            return None
        rows = self._rows("WHERE request_id=%s", (request_id,))
        return rows[0] if rows else None

    def events(self, job_id: str, after_seq: int = 0, limit: int = 1000) -> list[JobEvent]:
        with self._read_lock:
            blobs = self._reader.execute(
                "SELECT event FROM events WHERE job_id=%s AND seq>%s ORDER BY seq LIMIT %s",
                (job_id, after_seq, limit),
            ).fetchall()
        return [decode_event(_bytes(b)) for (b,) in blobs]

    def list_jobs(
        self, states: Sequence[JobState], after: JobKey | None, limit: int
    ) -> list[JobRow]:
        clauses: list[str] = []
        args: list[object] = []
        if states:
            clauses.append("state = ANY(%s)")
            args.append([s.value for s in states])
        if after is not None:
            clauses.append("(created_at, job_id) < (%s, %s)")
            args.extend(after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(f"{where} ORDER BY created_at DESC, job_id DESC LIMIT %s", (*args, limit))

    def count_states(self) -> dict[JobState, int]:
        out = dict.fromkeys(JobState, 0)
        with self._read_lock:
            for state, count in self._reader.execute(
                "SELECT state, count(*) FROM jobs GROUP BY state"
            ):
                out[JobState(str(state))] += int(str(count))
        return out

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            reader = getattr(self, "_reader", None)
            if reader is not None:
                reader.close()


def _event_row(
    job_id: str, event: JobEvent, node_seq: int | None, touched: dict[str, list[object]]
) -> tuple[str, int, bytes]:
    summary = touched.get(job_id)
    if summary is None:
        summary = touched[job_id] = [event.state.value, event.seq, None, 0.0]
    summary[0], summary[1] = event.state.value, event.seq
    if node_seq is not None:
        summary[2] = node_seq
    if event.state is JobState.RUNNING and not summary[3]:
        summary[3] = event.time
    return (job_id, event.seq, encode_event(event))


def _row(r: Sequence[object]) -> JobRow:
    (job_id, request_id, kind, request, token, created, node, attempt, node_seq, cancel) = r[:10]
    state, last_seq, started, last = r[10:]
    return JobRow(
        job_id=str(job_id),
        request_id=str(request_id),
        kind=str(kind),
        request=decode_request(str(kind), _bytes(request)),
        upload_token=str(token),
        created_at=float(str(created)),
        node=str(node),
        attempt=int(str(attempt)),
        node_seq=int(str(node_seq)),
        cancel_requested=str(cancel),
        state=JobState(str(state)),
        last_seq=int(str(last_seq)),
        started_at=float(str(started)),
        last_event=decode_event(_bytes(last)) if last is not None else None,
    )


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytea, got {type(value).__name__}")
