"""Versioned schema migrations of the SQL job stores: ``migrations/<store>/NNNN_name.sql``.

A store applies, in order, each migration its database lacks, in one transaction per
migration, and records the version it reached; a database whose version is newer than the
files this trainwire ships is refused (an older trainwire must not write a newer schema).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.jobs import JobEvent, JobState

MIGRATIONS_ROOT = Path(__file__).with_name("migrations")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(directory: Path) -> list[Migration]:
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


def newer_schema(where: str, current: int, latest: int) -> RuntimeError:
    return RuntimeError(
        f"{where}: the job store's schema is version {current}, newer than this trainwire's "
        f"{latest}; upgrade trainwire"
    )


def first_running_time(events: Iterable[JobEvent]) -> float:
    """When a job started: the time of its first RUNNING event (0.0 if none)."""
    return next((e.time for e in events if e.state is JobState.RUNNING), 0.0)


def fill_started_at(
    unknown: Iterable[str],
    events_of: Callable[[str], Iterable[JobEvent]],
    save: Callable[[str, float], None],
) -> int:
    """Fill in ``started_at`` of jobs stored before it was a column (``unknown``): read each
    job's events only up to its first RUNNING one. Returns how many jobs were filled."""
    count = 0
    for job_id in unknown:
        save(job_id, first_running_time(events_of(job_id)))
        count += 1
    return count
