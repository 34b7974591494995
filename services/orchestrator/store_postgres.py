"""The job store on PostgreSQL: job history on a database server rather than one machine's disk.

Same contract as ``SqliteJobStore`` and called the same way: synchronously, from the event loop
(``JobBook`` writes through before anyone sees a change), one transaction per change. One
connection in autocommit mode, so an append (the event row, the job's state and relayed seq) is
one statement, one round trip and one transaction; a job's insert is one explicit transaction.
Requests and events are stored as their protobuf encodings (``bytea``).

Durability is the server's: with PostgreSQL's default ``synchronous_commit=on`` a change is on
the server's disk before the call returns, which costs a WAL flush per event on the event loop;
``?options=-c%20synchronous_commit%3Doff`` in the URL trades that for SQLite's promise (a commit
survives an orchestrator crash; a database crash may lose the last fraction of a second, which
the trainer's own event log makes good). The connection is not re-established if the server
goes away: writes then fail until the orchestrator restarts.

The schema is the SQL files in ``migrations/postgres/`` (``NNNN_name.sql``), applied in order at
start, each in its own transaction that records its number in ``schema_version``; an advisory
lock makes orchestrators starting together apply each migration once. A database whose schema is
newer than this trainwire knows is refused.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from shared.jobs import JobEvent, JobState
from shared.rpc import serde
from shared.rpc.v1 import progress_pb2, strategy_pb2

from .store import StoredJob, StoreIntegrityError, redact_store_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations") / "postgres"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK = 0x7472_6169_6E77  # pg_advisory_xact_lock key: "trainw"
CONNECT_TIMEOUT_S = 10


class StoreUnreachableError(ValueError):
    """The PostgreSQL job store cannot be reached or refused us: the orchestrator cannot start
    (a ``ValueError``, so ``trainwire orchestrator`` exits 2 saying why). The message carries
    the URL without its password."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The schema's migrations in order; their numbers must run 1, 2, 3, … without a gap."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise RuntimeError(f"{path}: a migration is named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{directory}: migrations must be numbered 1..N, found {versions}")
    return found


def migrate(conn: psycopg.Connection[tuple[object, ...]], available: list[Migration]) -> int:
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
                raise RuntimeError(
                    f"the job store's schema is version {current}, newer than this trainwire's "
                    f"{latest}; upgrade trainwire"
                )
            if current == latest:
                return current
            step = available[current]  # versions are 1..N, so version current+1 is here
            conn.execute(step.sql.encode())
            conn.execute(
                "INSERT INTO schema_version(version, name) VALUES (%s, %s)",
                (step.version, step.name),
            )


class PostgresJobStore:
    """Jobs and events in a PostgreSQL database; every method is one transaction."""

    def __init__(self, conninfo: str) -> None:
        self.redacted = redact_store_url(conninfo)
        try:
            self._db: psycopg.Connection[tuple[object, ...]] = psycopg.connect(
                conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="trainwire-orchestrator",
            )
        except psycopg.OperationalError as exc:
            raise StoreUnreachableError(
                f"cannot connect to the job store {self.redacted}: {exc}"
            ) from None
        self._lock = threading.Lock()
        try:
            self.schema_version = migrate(self._db, migrations())
        except BaseException:
            self._db.close()
            raise

    def insert_job(self, job: StoredJob) -> None:
        request = serde.request_to_proto(job.request).SerializeToString()
        state = job.events[-1].state if job.events else JobState.QUEUED
        try:
            with self._lock, self._db.transaction():
                self._db.execute(
                    "INSERT INTO jobs(job_id, request_id, request, upload_token, created_at,"
                    " state, node, attempt, node_seq, cancel_requested)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        job.job_id,
                        job.request_id,
                        request,
                        job.upload_token,
                        job.created_at,
                        state.value,
                        job.node,
                        job.attempt,
                        job.node_seq,
                        job.cancel_requested,
                    ),
                )
                if job.events:
                    with self._db.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO events(job_id, seq, event) VALUES (%s,%s,%s)",
                            [
                                (job.job_id, e.seq, serde.event_to_proto(e).SerializeToString())
                                for e in job.events
                            ],
                        )
        except psycopg.errors.IntegrityError as exc:
            raise StoreIntegrityError(f"job {job.job_id}: {exc}") from exc

    def append_event(self, job_id: str, event: JobEvent, node_seq: int | None) -> None:
        blob = serde.event_to_proto(event).SerializeToString()
        try:
            with self._lock:
                # One statement: autocommit makes it one transaction, and one round trip.
                self._db.execute(
                    "WITH added AS (INSERT INTO events(job_id, seq, event) VALUES (%s,%s,%s))"
                    " UPDATE jobs SET state=%s, node_seq=coalesce(%s, node_seq)"
                    " WHERE job_id=%s",
                    (job_id, event.seq, blob, event.state.value, node_seq, job_id),
                )
        except psycopg.errors.IntegrityError as exc:
            raise StoreIntegrityError(f"job {job_id}, event {event.seq}: {exc}") from exc

    def update_placement(
        self, job_id: str, *, node: str, attempt: int, node_seq: int, cancel_requested: str
    ) -> None:
        with self._lock:
            updated = self._db.execute(
                "UPDATE jobs SET node=%s, attempt=%s, node_seq=%s, cancel_requested=%s"
                " WHERE job_id=%s",
                (node, attempt, node_seq, cancel_requested, job_id),
            ).rowcount
        if not updated:
            raise StoreIntegrityError(f"no job {job_id} in the store")

    def load(self) -> list[StoredJob]:
        with self._lock, self._db.transaction():
            self._db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            jobs = self._db.execute(
                "SELECT job_id, request_id, request, upload_token, created_at, node, attempt,"
                " node_seq, cancel_requested FROM jobs ORDER BY created_at, inserted"
            ).fetchall()
            events: dict[str, list[JobEvent]] = {}
            for job_id, blob in self._db.execute(
                "SELECT job_id, event FROM events ORDER BY job_id, seq"
            ):
                message = progress_pb2.ProgressEvent.FromString(bytes(_bytes(blob)))
                events.setdefault(str(job_id), []).append(serde.event_from_proto(message))
        out = []
        for job_id, request_id, request, token, created, node, attempt, node_seq, cancel in jobs:
            key = str(job_id)
            out.append(
                StoredJob(
                    job_id=key,
                    request_id=str(request_id),
                    request=serde.request_from_proto(
                        strategy_pb2.TrainRequest.FromString(_bytes(request))
                    ),
                    upload_token=str(token),
                    created_at=float(str(created)),
                    node=str(node),
                    attempt=int(str(attempt)),
                    node_seq=int(str(node_seq)),
                    cancel_requested=str(cancel),
                    events=tuple(events.get(key, ())),
                )
            )
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytea, got {type(value).__name__}")
