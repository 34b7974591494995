"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started in a temp dir.

``postgres_server`` (session scope) runs ``initdb`` (trust auth, superuser ``postgres``) in a
fresh directory and starts the server on a free loopback port, its socket in that directory;
at the end of the session it stops the server and removes the directory. ``postgres_url``
(function scope) creates an empty database for one test and yields its URL.

The binaries come from ``/usr/lib/postgresql/*/bin`` (the newest) or ``PATH``. Without them the
fixtures skip, saying what to install; under CI that skip is a failure (``ci_skips.py``), and
``.ci/run`` installs the package. PostgreSQL refuses to run as root: as root the server runs as
the ``postgres`` user the package creates (``runuser``), and the directory is given to it.

The server runs with ``fsync=off``: a test database need not survive a power cut, and the
suite runs faster. Use the fixtures by importing them into a test module (or list this module
in ``pytest_plugins``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port

SERVER_USER = "postgres"
"""The OS user the server runs as when the tests run as root (Debian's package creates it)."""
_START_TIMEOUT_S = 60
_INITDB_OPTIONS = ("-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")


@dataclass
class PostgresServer:
    host: str
    port: int
    directory: Path
    _names: Iterator[int]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: the newest ``/usr/lib/postgresql/N/bin``, or PATH."""
    found = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            found.append((int(path.parent.parent.name), path.parent))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway server (skip the test if the binaries are not installed); stop it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb or initdb on"
            " PATH): install Debian's postgresql package (.ci/run does)"
        )
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root, PostgreSQL needs the OS user {SERVER_USER!r} to run as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root, starting PostgreSQL as another user needs runuser")
    directory = Path(tempfile.mkdtemp(prefix="trainwire-pg-"))
    data = directory / "data"
    log = directory / "server.log"
    if os.geteuid() == 0:
        os.chown(directory, user.pw_uid, user.pw_gid)
    port = free_port()
    pg_ctl = str(bin_dir / "pg_ctl")
    try:
        subprocess.run(
            _as_server_user([str(bin_dir / "initdb"), "-D", str(data), *_INITDB_OPTIONS]),
            check=True,
            capture_output=True,
            timeout=_START_TIMEOUT_S,
        )
        options = f"-k {directory} -h 127.0.0.1 -p {port} -c fsync=off -c full_page_writes=off"
        started = subprocess.run(
            _as_server_user(
                [
                    pg_ctl,
                    "start",
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                ]
            ),
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 10,
        )
        if started.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(
                f"pg_ctl start failed ({started.returncode}): {started.stderr}\n{server_log}"
            )
        try:
            yield PostgresServer("127.0.0.1", port, directory, itertools.count(1))
        finally:
            subprocess.run(
                _as_server_user([pg_ctl, "stop", "-w", "-m", "fast", "-D", str(data)]),
                capture_output=True,
                timeout=_START_TIMEOUT_S,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_shared: list[PostgresServer] = []
"""The session's server while one runs: each test module that imports ``postgres_server`` gets
its own session-scoped fixture, and they share one server (the first to start it stops it, at
the end of the session, after the others)."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _shared:
        yield _shared[0]
        return
    with running_postgres() as server:
        _shared.append(server)
        try:
            yield server
        finally:
            _shared.clear()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
