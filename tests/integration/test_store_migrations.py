"""Stores written by the first schema (no kind, no summary columns) open, migrate and read back.

The old rows are written as the first release wrote them: the schema-1 SQL, the request and
event blobs, ``jobs.state`` the last event's state. Opening the store migrates it to the latest
schema: every job is a ``train`` job, its last seq and start time are filled in from its events.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from services.orchestrator.jobs import JobBook
from services.orchestrator.schema import migrations
from services.orchestrator.store import encode_event, encode_request
from services.orchestrator.store_postgres import MIGRATIONS_DIR as PG_MIGRATIONS
from services.orchestrator.store_postgres import PostgresJobStore, migrate
from services.orchestrator.store_sqlite import MIGRATIONS_DIR as SQLITE_MIGRATIONS
from services.orchestrator.store_sqlite import SCHEMA_VERSION, SqliteJobStore
from shared.jobs import EventKind, JobEvent, JobState
from shared.spec import TrainingRequest, default_strategy

pytestmark = pytest.mark.timeout(120)
T0 = 1_700_000_000.0
REQUEST = TrainingRequest(
    symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy(), request_id="old-req"
)


def _events(job_id: str, states: list[JobState]) -> list[JobEvent]:
    return [
        JobEvent(
            job_id=job_id,
            seq=n,
            time=T0 + n,
            state=state,
            kind=EventKind.LIFECYCLE,
            message=f"{state.value} {n}",
        )
        for n, state in enumerate(states, start=1)
    ]


OLD_JOBS = {
    "done": _events(
        "done", [JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]
    ),
    "running": _events("running", [JobState.QUEUED, JobState.QUEUED, JobState.RUNNING]),
    "waiting": _events("waiting", [JobState.QUEUED]),
}


def _old_rows() -> list[tuple[tuple[object, ...], list[tuple[str, int, bytes]]]]:
    rows: list[tuple[tuple[object, ...], list[tuple[str, int, bytes]]]] = []
    for n, (job_id, events) in enumerate(OLD_JOBS.items()):
        request_id = "old-req" if job_id == "done" else ""
        _, request = encode_request(replace(REQUEST, request_id=request_id))
        job = (
            job_id,
            request_id,
            request,
            f"token-{job_id}",
            T0 + n,
            events[-1].state.value,
            "n:1" if job_id == "running" else "",
            1 if job_id == "running" else 0,
            3 if job_id == "running" else 0,
            "",
        )
        rows.append((job, [(job_id, e.seq, encode_event(e)) for e in events]))
    return rows


def _check_migrated(book: JobBook) -> None:
    done = book.get("done")
    assert (done.kind, done.state, done.last_seq) == ("train", JobState.SUCCEEDED, 4)
    assert done.started_at == T0 + 2  # the first RUNNING event
    assert done.finished_at == T0 + 4
    assert [r.job_id for r in book.unfinished()] == ["running", "waiting"]
    running = book.get("running")
    assert (running.started_at, running.node, running.node_seq) == (T0 + 3, "n:1", 3)
    assert book.get("waiting").started_at == 0.0
    again, created = book.create(REQUEST)  # the old request_id still finds its job
    assert not created and again.job_id == "done"
    assert [r.job_id for r in book.listing([])] == ["waiting", "running", "done"]


def test_a_schema_1_sqlite_file_migrates_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.executescript(migrations(SQLITE_MIGRATIONS)[0].sql)
    db.execute("INSERT INTO meta(key, value) VALUES('schema', '1')")
    for job, events in _old_rows():
        db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?)", job)
        db.executemany("INSERT INTO events VALUES (?,?,?)", events)
    db.close()
    store = SqliteJobStore(path)
    book = JobBook(store)
    _check_migrated(book)
    book.close()
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    db.close()
    SqliteJobStore(path).close()  # a second open has nothing to migrate


def test_a_newer_sqlite_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    SqliteJobStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE meta SET value='999' WHERE key='schema'")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this trainwire"):
        SqliteJobStore(path)


def test_a_schema_1_postgres_database_migrates_and_reads_back(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert migrate(conn, migrations(PG_MIGRATIONS)[:1]) == 1
        for job, events in _old_rows():
            conn.execute(
                "INSERT INTO jobs(job_id, request_id, request, upload_token, created_at, state,"
                " node, attempt, node_seq, cancel_requested)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                job,
            )
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO events VALUES (%s,%s,%s)", events)
    store = PostgresJobStore(postgres_url)
    assert store.schema_version == len(migrations(PG_MIGRATIONS))
    book = JobBook(store)
    _check_migrated(book)
    book.close()
    store.close()
