"""One contract for every job store: the same tests run against memory, SQLite and PostgreSQL.

Each test takes ``backend`` (parametrized over the three stores) and opens stores through it; a
persistent backend's ``open()`` after ``close()`` sees what was written before. PostgreSQL is a
real server (``tests/support/postgres.py``), one fresh database per test.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest

from services import cli
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.jobs import JobBook
from services.orchestrator.server import create_server
from services.orchestrator.store import (
    AppendEvent,
    InsertJob,
    JobStore,
    MemoryJobStore,
    SetPlacement,
    StoredJob,
    StoreIntegrityError,
    open_store,
    parse_store_url,
    redact_store_url,
)
from services.orchestrator.store_postgres import (
    MIGRATIONS_DIR,
    PostgresJobStore,
    StoreUnreachableError,
    migrations,
)
from services.orchestrator.store_sqlite import SqliteJobStore
from shared.jobs import EventKind, JobEvent, JobState
from shared.spec import DataSpec, TrainingRequest, default_strategy

pytestmark = pytest.mark.timeout(120)


@dataclass
class Backend:
    name: str
    open: Callable[[], JobStore]
    persistent: bool


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[JobStore] = []

    def track(make: Callable[[], JobStore]) -> Callable[[], JobStore]:
        def open_() -> JobStore:
            store = make()
            opened.append(store)
            return store

        return open_

    if request.param == "memory":
        yield Backend("memory", track(MemoryJobStore), persistent=False)
    elif request.param == "sqlite":
        path = tmp_path / "jobs.sqlite3"
        yield Backend("sqlite", track(lambda: SqliteJobStore(path)), persistent=True)
    else:
        url = str(request.getfixturevalue("postgres_url"))
        yield Backend("postgresql", track(lambda: PostgresJobStore(url)), persistent=True)
    for store in opened:
        store.close()  # closing twice is allowed


def _request(request_id: str = "", symbols: tuple[str, ...] = ("SYNTH",)) -> TrainingRequest:
    return TrainingRequest(
        symbols=symbols,
        timeframes=("1h", "4h"),
        strategy=default_strategy(),
        data=DataSpec(bars=1234),
        request_id=request_id,
    )


def _event(job_id: str, seq: int, state: JobState = JobState.RUNNING, **kw: object) -> JobEvent:
    return JobEvent(
        job_id=job_id,
        seq=seq,
        time=1_700_000_000.0 + seq,
        state=state,
        kind=EventKind.LIFECYCLE,
        **kw,  # type: ignore[arg-type]
    )


def _job(job_id: str, created_at: float = 1_700_000_000.0, request_id: str = "") -> StoredJob:
    return StoredJob(
        job_id=job_id,
        request_id=request_id,
        request=_request(request_id),
        upload_token=f"token-{job_id}",
        created_at=created_at,
        node="",
        attempt=0,
        node_seq=0,
        cancel_requested="",
        events=(_event(job_id, 1, JobState.QUEUED, message="Queued"),),
    )


def _only(store: JobStore) -> StoredJob:
    (job,) = list(store.load())
    return job


def test_an_empty_store_loads_nothing(backend: Backend) -> None:
    assert list(backend.open().load()) == []


def test_an_inserted_job_loads_back_field_for_field(backend: Backend) -> None:
    store = backend.open()
    job = replace(
        _job("a1", request_id="req-1"),
        node="n:1",
        attempt=2,
        node_seq=5,
        cancel_requested="user",
        events=(_event("a1", 1, JobState.QUEUED), _event("a1", 2, message="placed")),
    )
    store.insert_job(job)
    assert _only(store) == job


def test_events_append_in_order_and_node_seq_only_when_given(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    store.append_event("a1", _event("a1", 2, message="started"), node_seq=10)
    store.append_event("a1", _event("a1", 3, message="orchestrator-side"), None)
    store.append_event("a1", _event("a1", 4, JobState.SUCCEEDED, message="done"), 12)
    job = _only(store)
    assert [e.seq for e in job.events] == [1, 2, 3, 4]
    assert [e.message for e in job.events] == ["Queued", "started", "orchestrator-side", "done"]
    assert job.events[-1].state is JobState.SUCCEEDED
    assert job.node_seq == 12


def test_update_placement_changes_only_that_job(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    store.insert_job(_job("b2", created_at=1_700_000_001.0))
    store.update_placement("a1", node="gpu:50052", attempt=1, node_seq=3, cancel_requested="")
    store.update_placement("a1", node="cpu:50052", attempt=2, node_seq=0, cancel_requested="bye")
    a1, b2 = store.load()
    assert (a1.node, a1.attempt, a1.node_seq, a1.cancel_requested) == ("cpu:50052", 2, 0, "bye")
    assert b2 == _job("b2", created_at=1_700_000_001.0)


def test_jobs_load_oldest_first_ties_in_insertion_order(backend: Backend) -> None:
    store = backend.open()
    for job_id, created in (("c", 3.0), ("a", 1.0), ("t2", 2.0), ("t1", 2.0)):
        store.insert_job(_job(job_id, created_at=created))
    assert [j.job_id for j in store.load()] == ["a", "t2", "t1", "c"]


def test_a_reopened_store_has_everything_a_closed_one_had(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1", request_id="r"))
    store.append_event("a1", _event("a1", 2), node_seq=4)
    store.update_placement("a1", node="n:1", attempt=1, node_seq=4, cancel_requested="")
    before = list(store.load())
    store.close()
    after = list(backend.open().load())
    if backend.persistent:
        assert after == before
    else:
        assert after == []  # memory: a new store starts empty


def test_unfinished_jobs_come_back_oldest_first(backend: Backend) -> None:
    store = backend.open()
    book = JobBook(store)
    first, _ = book.create(_request("one"))
    done, _ = book.create(_request("two"))
    last, _ = book.create(_request("three"))
    book.append(first.job_id, _event(first.job_id, 0, JobState.RUNNING), node_seq=2)
    book.append(done.job_id, _event(done.job_id, 0, JobState.FAILED, message="boom"))
    if backend.persistent:
        store.close()
        book = JobBook(backend.open())
    unfinished = book.unfinished()
    assert [r.job_id for r in unfinished] == [first.job_id, last.job_id]
    assert [r.state for r in unfinished] == [JobState.RUNNING, JobState.QUEUED]
    assert unfinished[0].node_seq == 2
    assert book.get(done.job_id).state is JobState.FAILED


def test_a_repeated_request_id_finds_the_first_job_after_a_reload(backend: Backend) -> None:
    store = backend.open()
    record, created = JobBook(store).create(_request("same"))
    assert created
    if backend.persistent:
        store.close()
        store = backend.open()
    again, created = JobBook(store).create(_request("same"))
    assert not created and again.job_id == record.job_id
    assert [j.request_id for j in store.load()] == ["same"]


def test_the_store_refuses_a_second_job_with_the_same_request_id(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1", request_id="dup"))
    with pytest.raises(StoreIntegrityError):
        store.insert_job(_job("b2", request_id="dup"))
    store.insert_job(_job("c3"))  # an empty request_id is no key: any number may share it
    store.insert_job(_job("d4"))
    assert [j.job_id for j in store.load()] == ["a1", "c3", "d4"]


def test_the_store_refuses_a_duplicate_job_id_and_keeps_the_first(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    with pytest.raises(StoreIntegrityError):
        store.insert_job(replace(_job("a1"), upload_token="other"))
    assert _only(store) == _job("a1")


def test_a_refused_append_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    store.append_event("a1", _event("a1", 2), node_seq=3)
    with pytest.raises(StoreIntegrityError):
        store.append_event("a1", _event("a1", 2, JobState.FAILED, message="again"), node_seq=99)
    job = _only(store)
    assert [e.seq for e in job.events] == [1, 2]
    assert job.events[-1].state is JobState.RUNNING
    assert job.node_seq == 3  # the node_seq of the refused append was rolled back with it


def test_writes_for_an_unknown_job_are_refused(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(StoreIntegrityError):
        store.append_event("nope", _event("nope", 1), None)
    with pytest.raises(StoreIntegrityError):
        store.update_placement("nope", node="n", attempt=1, node_seq=0, cancel_requested="")
    assert list(store.load()) == []


def test_unicode_and_large_payloads_round_trip(backend: Backend) -> None:
    store = backend.open()
    text = "Grüße — 训练 ✓ 🚀 \u200b"
    symbols = tuple(f"SYM{i}é" for i in range(500))
    job = replace(
        _job("u1", request_id=f"req-{text}"),
        request=_request(f"req-{text}", symbols=symbols),
        node=f"nœud-{text}:1",
        cancel_requested=text,
        upload_token="ü" * 64,
    )
    store.insert_job(job)
    big = "x" * (2 * 1024 * 1024) + text  # a 2 MiB message
    event = _event("u1", 2, message=big, metrics={f"métrique-{i}": i / 7 for i in range(1000)})
    store.append_event("u1", event, node_seq=2**40)  # beyond 32 bits
    if backend.persistent:
        store.close()
        store = backend.open()
    loaded = _only(store)
    assert loaded == replace(job, node_seq=2**40, events=(*job.events, event))


def test_concurrent_appends_to_two_jobs_keep_each_log_whole(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    store.insert_job(_job("b2", created_at=1_700_000_001.0))
    count = 150
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(job_id: str) -> None:
        try:
            start.wait()
            for seq in range(2, count + 2):
                store.append_event(job_id, _event(job_id, seq, message=f"{job_id}-{seq}"), seq)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(j,)) for j in ("a1", "b2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for job in store.load():
        assert [e.seq for e in job.events] == list(range(1, count + 2))
        assert [e.message for e in job.events[1:]] == [
            f"{job.job_id}-{s}" for s in range(2, count + 2)
        ]
        assert job.node_seq == count + 1


# --- reading what is not in memory: summaries, pages, batches -----------------------------------


def _finished(store: JobStore, job_id: str, created_at: float, state: JobState) -> None:
    store.insert_job(_job(job_id, created_at=created_at, request_id=f"req-{job_id}"))
    store.write(
        [
            AppendEvent(job_id, _event(job_id, 2, message="started"), node_seq=1),
            AppendEvent(job_id, _event(job_id, 3, message="batch", percentage=50.0), 2),
            AppendEvent(job_id, _event(job_id, 4, state, message="end", percentage=50.0), 3),
        ]
    )


def test_a_job_reads_back_with_its_summary_and_kind(backend: Backend) -> None:
    store = backend.open()
    _finished(store, "a1", 10.0, JobState.FAILED)
    store.insert_job(_job("q2", created_at=11.0))
    if backend.persistent:
        store.close()
        store = backend.open()
    row = store.get_job("a1")
    assert row is not None
    assert (row.kind, row.request, row.request_id) == ("train", _request("req-a1"), "req-a1")
    assert (row.state, row.last_seq, row.node_seq) == (JobState.FAILED, 4, 3)
    assert row.started_at == _event("a1", 2).time  # the first RUNNING event's time
    assert row.last_event is not None and row.last_event.message == "end"
    queued = store.get_job("q2")
    assert queued is not None
    assert (queued.state, queued.last_seq, queued.started_at) == (JobState.QUEUED, 1, 0.0)
    assert store.get_job("nope") is None
    assert store.find_request("req-a1") == row
    assert store.find_request("req-none") is None
    assert store.find_request("") is None


def test_events_page_after_a_seq(backend: Backend) -> None:
    store = backend.open()
    _finished(store, "a1", 10.0, JobState.SUCCEEDED)
    assert [e.seq for e in store.events("a1")] == [1, 2, 3, 4]
    assert [e.seq for e in store.events("a1", after_seq=1, limit=2)] == [2, 3]
    assert [e.seq for e in store.events("a1", after_seq=3, limit=2)] == [4]
    assert store.events("a1", after_seq=4) == []
    assert store.events("nope") == []


def test_jobs_list_newest_first_by_state_and_after_a_key(backend: Backend) -> None:
    store = backend.open()
    _finished(store, "old", 1.0, JobState.SUCCEEDED)
    _finished(store, "mid", 2.0, JobState.FAILED)
    store.insert_job(_job("t1", created_at=3.0))  # a tie on created_at: job_id decides
    store.insert_job(_job("t2", created_at=3.0))
    every = [r.job_id for r in store.list_jobs([], None, 100)]
    assert every == ["t2", "t1", "mid", "old"]
    assert [r.job_id for r in store.list_jobs([], None, 2)] == ["t2", "t1"]
    assert [r.job_id for r in store.list_jobs([], (3.0, "t1"), 100)] == ["mid", "old"]
    assert [r.job_id for r in store.list_jobs([], (3.0, "t2"), 1)] == ["t1"]
    finished = [JobState.SUCCEEDED, JobState.FAILED]
    assert [r.job_id for r in store.list_jobs(finished, None, 100)] == ["mid", "old"]
    assert [r.job_id for r in store.list_jobs([JobState.QUEUED], (3.0, "t2"), 9)] == ["t1"]
    assert store.count_states() == {
        **dict.fromkeys(JobState, 0),
        JobState.QUEUED: 2,
        JobState.SUCCEEDED: 1,
        JobState.FAILED: 1,
    }


def test_only_unfinished_jobs_load_at_start(backend: Backend) -> None:
    store = backend.open()
    _finished(store, "done", 1.0, JobState.CANCELLED)
    store.insert_job(_job("waiting", created_at=2.0))
    store.insert_job(_job("running", created_at=3.0))
    store.append_event("running", _event("running", 2), node_seq=1)
    loaded = store.load_unfinished()
    assert [j.job_id for j in loaded] == ["waiting", "running"]
    assert [len(j.events) for j in loaded] == [1, 2]


def test_a_batch_is_one_transaction(backend: Backend) -> None:
    store = backend.open()
    store.insert_job(_job("a1"))
    store.write(
        [
            InsertJob(_job("b2", created_at=1_700_000_001.0)),
            AppendEvent("b2", _event("b2", 2), node_seq=1),
            SetPlacement("b2", node="n:1", attempt=1, node_seq=0, cancel_requested=""),
            AppendEvent("a1", _event("a1", 2), node_seq=None),
        ]
    )
    b2 = store.get_job("b2")
    assert b2 is not None and (b2.last_seq, b2.node, b2.node_seq) == (2, "n:1", 0)
    with pytest.raises(StoreIntegrityError):
        store.write(
            [
                AppendEvent("a1", _event("a1", 3, message="kept only if all are"), None),
                InsertJob(_job("c3")),
                AppendEvent("b2", _event("b2", 2, message="a seq b2 has"), None),
            ]
        )
    assert [e.seq for e in store.events("a1")] == [1, 2]
    assert store.get_job("c3") is None


def test_a_book_holds_few_finished_jobs_and_reads_the_rest_from_the_store(
    backend: Backend,
) -> None:
    book = JobBook(backend.open(), recent=2)
    ids = []
    for n in range(4):
        record, _ = book.create(_request(f"r{n}"))
        book.append(record.job_id, _event(record.job_id, 0, JobState.RUNNING, message="go"))
        book.append(record.job_id, _event(record.job_id, 0, JobState.SUCCEEDED, message="ok"))
        ids.append(record.job_id)
    running, _ = book.create(_request("live"))
    assert set(book._jobs) == {ids[2], ids[3], running.job_id}  # the 2 last finished + unfinished
    old = book.get(ids[0])  # from the store
    assert (old.state, old.last_seq, old.message) == (JobState.SUCCEEDED, 3, "ok")
    assert old.finished_at > 0 and old.started_at > 0
    assert [e.message for e in book.events(ids[0])] == ["Queued", "go", "ok"]
    again, created = book.create(_request("r0"))  # a request_id of an evicted job
    assert not created and again.job_id == ids[0]
    listed = [r.job_id for r in book.listing([])]
    assert listed == [running.job_id, *reversed(ids)]
    assert [r.job_id for r in book.listing([JobState.QUEUED])] == [running.job_id]
    assert book.counts()[JobState.SUCCEEDED] == 4
    assert book.counts()[JobState.QUEUED] == 1
    book.close()


# --- PostgreSQL: versioned migrations ------------------------------------------------------------


def test_postgres_migrations_are_recorded_once(postgres_url: str) -> None:
    available = migrations()
    assert [m.version for m in available] == list(range(1, len(available) + 1))
    assert all((MIGRATIONS_DIR / m.name).is_file() for m in available)
    PostgresJobStore(postgres_url).close()
    again = PostgresJobStore(postgres_url)  # a second start applies nothing
    assert again.schema_version == available[-1].version
    again.close()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in available]


def test_postgres_refuses_a_schema_newer_than_it_knows(postgres_url: str) -> None:
    PostgresJobStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO schema_version(version, name) VALUES (999, '0999_future.sql')")
    with pytest.raises(RuntimeError, match="newer than this trainwire"):
        PostgresJobStore(postgres_url)


def test_postgres_unreachable_names_the_server_not_the_password() -> None:
    url = "postgresql://alice:s3cret@127.0.0.1:1/jobs"
    with pytest.raises(StoreUnreachableError) as caught:
        PostgresJobStore(url)
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)


# --- --store URLs --------------------------------------------------------------------------------


def test_store_urls(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert parse_store_url("", state).path == state / "jobs.sqlite3"
    assert parse_store_url("sqlite", state).path == state / "jobs.sqlite3"
    assert parse_store_url("sqlite:sub/j.db", state).path == state / "sub/j.db"
    assert parse_store_url("sqlite:///abs/j.db", state).path == Path("/abs/j.db")
    assert parse_store_url("memory:", state).kind == "memory"
    pg = parse_store_url("postgresql://bob:pw@db.example:5433/jobs?sslmode=require", state)
    assert pg.kind == "postgresql" and pg.conninfo.endswith("sslmode=require")
    assert pg.redacted == "postgresql://bob:***@db.example:5433/jobs?sslmode=require"
    assert isinstance(open_store("memory:", state), MemoryJobStore)
    sqlite = open_store("sqlite:j.db", state)
    assert isinstance(sqlite, SqliteJobStore) and sqlite.path == state / "j.db"
    sqlite.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "sqlite://host/path",
        "sqlite:///",
        "sqlite:dir/",
        "postgresql://u:pw@h:notaport/db",
        "jobs.sqlite3",
    ],
)
def test_a_bad_store_url_is_a_value_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--store") as caught:
        OrchestratorConfig(store=url, state_dir=tmp_path)
    assert "pw" not in str(caught.value)


def test_redaction_hides_every_password_form() -> None:
    assert redact_store_url("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"
    assert redact_store_url("postgresql://h/db?password=x&user=u") == (
        "postgresql://h/db?password=***&user=u"
    )
    assert redact_store_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_orchestrator_with_a_bad_store_exits_2_without_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["orchestrator", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:0"]
    assert cli.main([*argv, "--store", "postgres://u:hunter2@h:port/db"]) == 2
    err = capsys.readouterr().err
    assert "--store" in err and "hunter2" not in err
    assert cli.main([*argv, "--store", "redis://localhost"]) == 2
    assert "sqlite:///ABS/PATH" in capsys.readouterr().err


def test_the_store_flag_reads_its_environment_variable(tmp_path: Path) -> None:
    env = {"TRAINWIRE_STORE": "bogus://x", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "orchestrator", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2 and "--store" in done.stderr


async def test_an_orchestrator_on_postgres_logs_its_store_without_the_password(
    postgres_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The test server trusts loopback, so the password is never checked: only never shown.
    url = postgres_url.replace("postgres@", "postgres:topsecret@", 1)
    caplog.set_level(logging.INFO)
    server = await create_server(
        OrchestratorConfig(listen="127.0.0.1:0", state_dir=tmp_path / "state", store=url)
    )
    try:
        assert isinstance(server.store, PostgresJobStore)
        record, _ = server.book.create(_request("pg-orchestrator"))
    finally:
        await server.stop(0)
    assert "postgres:***@" in caplog.text and "topsecret" not in caplog.text
    reopened = PostgresJobStore(postgres_url)
    assert [j.job_id for j in reopened.load()] == [record.job_id]
    reopened.close()
    assert not (tmp_path / "state" / "jobs.sqlite3").exists()
