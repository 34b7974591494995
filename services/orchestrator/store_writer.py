"""One thread that writes to the job store, committing whatever has queued up in one transaction.

``JobBook`` hands every change (a job inserted, an event appended, a placement changed) to
``StoreWriter.submit`` and gets a ticket back at once; the event loop never waits on the disk or
the database. The writer thread commits what has queued up as one transaction (group commit): it
takes the first write, lets more gather for at most ``linger_s`` (or until ``MAX_BATCH`` are
queued, or someone waits for a commit: ``wait``/``flushed`` cut the linger short), and commits
them together, so a burst of events costs one commit, not one per event. Writes commit in the
order they were submitted.

After each commit ``on_commit(ticket)`` is called on the writer thread with the last ticket
committed; ``wait(ticket)`` blocks, and ``flushed(ticket)`` awaits, until a ticket is committed.

A batch the store refuses is retried one write per transaction, so one bad write (say a
duplicate seq) fails alone: its error is logged and raised to whoever waits for its ticket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .store import JobStore, Write

_LOGGER = logging.getLogger(__name__)

MAX_BATCH = 1024
"""Most writes in one transaction (bounds a transaction's size and the time to its commit)."""
LINGER_S = 0.002
"""How long the first write of a batch waits for more to join it (unless a caller waits)."""
MAX_ERRORS_KEPT = 1024
"""Refused writes whose error is kept for a later ``wait`` (the oldest are dropped)."""


class StoreWriter:
    def __init__(
        self,
        store: JobStore,
        on_commit: Callable[[int], None] | None = None,
        *,
        linger_s: float = LINGER_S,
    ) -> None:
        self._store = store
        self.on_commit = on_commit
        self._linger_s = linger_s
        self._urgent = False
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, Write]] = deque()
        self._submitted = 0
        self._committed = 0
        self._errors: dict[int, Exception] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="job-store-writer", daemon=True)
        self._thread.start()

    @property
    def committed(self) -> int:
        """The last ticket committed (every earlier one is committed too)."""
        return self._committed

    def submit(self, write: Write) -> int:
        """Queue ``write``; returns its ticket. After ``close`` the write is done here, now."""
        with self._cond:
            self._submitted += 1
            ticket = self._submitted
            if not self._stopping:
                self._queue.append((ticket, write))
                if len(self._queue) == 1 or len(self._queue) >= MAX_BATCH:
                    self._cond.notify_all()  # wake an idle writer, or end its linger
                return ticket
        self._commit([(ticket, write)])
        return ticket

    def wait(self, ticket: int) -> None:
        """Block until ``ticket`` is committed; raise the store's error if it was refused."""
        with self._cond:
            if self._committed < ticket:
                self._urgent = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._committed >= ticket)
            error = self._errors.pop(ticket, None)
        if error is not None:
            raise error

    async def flushed(self, ticket: int | None = None) -> None:
        """Wait, without blocking the event loop, until ``ticket`` (default: every write
        submitted so far) is committed."""
        want = self._submitted if ticket is None else ticket
        if self._committed >= want:
            self._raise_error(want)
            return
        await asyncio.to_thread(self.wait, want)

    def _raise_error(self, ticket: int) -> None:
        with self._cond:
            error = self._errors.pop(ticket, None)
        if error is not None:
            raise error

    def close(self) -> None:
        """Commit what is queued, then stop the thread (later writes are done inline)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                deadline = time.monotonic() + self._linger_s
                while len(self._queue) < MAX_BATCH and not (self._urgent or self._stopping):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._urgent = False
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            self._commit(batch)

    def _commit(self, batch: list[tuple[int, Write]]) -> None:
        errors: dict[int, Exception] = {}
        try:
            self._store.write([w for _, w in batch])
        except Exception:
            for ticket, write in batch:  # find the bad write(s); the rest commit alone
                try:
                    self._store.write([write])
                except Exception as exc:
                    _LOGGER.error("job store refused %s: %s", type(write).__name__, exc)
                    errors[ticket] = exc
        last = batch[-1][0]
        with self._cond:
            self._errors.update(errors)
            while len(self._errors) > MAX_ERRORS_KEPT:
                del self._errors[next(iter(self._errors))]
            self._committed = max(self._committed, last)
            self._cond.notify_all()
        if self.on_commit is not None:
            self.on_commit(last)
