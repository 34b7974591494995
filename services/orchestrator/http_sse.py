"""A job's events as Server-Sent Events (``text/event-stream``), straight from the job book.

Each event is one frame: ``id: <seq>`` and ``data: <the ProgressEvent as proto JSON>``, with
the default event type (``message``), so ``EventSource.onmessage`` and ``curl -N`` see every
event alike; the kind is in the JSON (``"kind": "EVENT_KIND_BATCH"``). A client resumes with the
``Last-Event-ID`` header (``EventSource`` sends it when it reconnects) or ``?after_seq=N``;
the header wins, since a reconnecting ``EventSource`` repeats its first URL. Either way the
stream starts strictly after that seq: no gap, no duplicate (the job book's ``watch``).

The stream ends after the terminal event. Asked to resume after the terminal event, the reply
is ``204 No Content``, which tells an ``EventSource`` to stop reconnecting. A comment line
(``: keep-alive``) goes out after ``HEARTBEAT_S`` of silence, so proxies keep the connection
and a vanished client is noticed. When the orchestrator stops, each stream gets a last frame
``event: interrupted`` whose data is the error JSON (``UNAVAILABLE``, with the seq to resume
after) and ends at once.

Frames are built once per event, whatever the number of watchers (a bounded cache by
``(job_id, seq)``), as the gRPC servicer does for its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from shared import errors
from shared.jobs import JobEvent
from shared.rpc import serde

from .http_errors import error_body, json_dumps
from .jobs import JobBook

HEARTBEAT_S = 15.0
RETRY_MS = 2000
"""How long an ``EventSource`` waits before reconnecting (sent once, as ``retry:``)."""
FRAME_CACHE_EVENTS = 65_536
INT64_MAX = 2**63 - 1


def event_json(event: JobEvent) -> str:
    """The event as proto JSON (camelCase names, enum names, int64 as strings), one line."""
    return json_dumps(json_format.MessageToDict(serde.event_to_proto(event)))


class EventFrames:
    """SSE frames of recent events, each built once (bounded, oldest dropped first)."""

    def __init__(self, capacity: int = FRAME_CACHE_EVENTS) -> None:
        self._capacity = capacity
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def frame(self, event: JobEvent) -> bytes:
        key = (event.job_id, event.seq)
        frame = self._frames.get(key)
        if frame is None:
            frame = f"id: {event.seq}\ndata: {event_json(event)}\n\n".encode()
            self._frames[key] = frame
            if len(self._frames) > self._capacity:
                self._frames.popitem(last=False)
        return frame


def resume_after(request: web.Request) -> int:
    """The seq to resume after: ``Last-Event-ID`` if sent, else ``?after_seq``, else 0."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        return _seq(header.strip(), "Last-Event-ID")
    query = request.query.get("after_seq")
    return _seq(query, "after_seq") if query else 0


def _seq(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > INT64_MAX:
        raise errors.InvalidArgumentError(
            f"{text[:40]!r} is not a seq; give the last event's id (a whole number >= 0), "
            "or 0 for every event",
            field=field,
        )
    return int(text)


async def stream_events(
    request: web.Request, book: JobBook, frames: EventFrames, job_id: str
) -> web.StreamResponse:
    """Serve ``job_id``'s events after the resume point, until the terminal one."""
    after = resume_after(request)
    record = book.get(job_id)  # 400 for a malformed id, 404 for an unknown one
    if after > record.last_seq:
        # The book's own refusal (OUT_OF_RANGE, naming the events there are).
        await anext(aiter(book.watch(job_id, after)))
    if record.state.terminal and after >= record.last_seq:
        return web.Response(status=204)
    if book.closing:
        raise _closed(job_id, after)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    stream = _Stream(response, asyncio.current_task())
    await stream.write(f"retry: {RETRY_MS}\n\n".encode())
    heartbeat = asyncio.create_task(stream.heartbeats())
    last = after
    try:
        async for event in book.watch(job_id, after):
            await stream.write(frames.frame(event))
            last = event.seq
    except errors.TrainwireError as exc:  # the orchestrator is stopping
        with contextlib.suppress(ConnectionError):
            data = json_dumps({**error_body(exc), "lastEventId": str(last)})
            await stream.write(f"event: interrupted\ndata: {data}\n\n".encode())
    except (ConnectionError, asyncio.CancelledError):
        # The client went away: a write failed here, or the heartbeat's failed (it cancels
        # this task, which may be waiting for the job's next event).
        if not stream.gone:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return response
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await heartbeat
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


def _closed(job_id: str, after: int) -> errors.UnavailableError:
    return errors.UnavailableError(
        f"the orchestrator is shutting down; job {job_id} keeps its events: watch it again "
        f"with after_seq {after} once the orchestrator is back",
        reason="SHUTTING_DOWN",
    )


class _Stream:
    """Writes to one SSE response, and a keep-alive comment when it has been quiet."""

    def __init__(self, response: web.StreamResponse, owner: asyncio.Task[Any] | None) -> None:
        self._response = response
        self._owner = owner
        self._last_write = time.monotonic()
        self.gone = False
        """Set when a write failed: the client closed the connection."""

    async def write(self, data: bytes) -> None:
        self._last_write = time.monotonic()
        try:
            await self._response.write(data)
        except ConnectionError:
            self.gone = True
            raise

    async def heartbeats(self) -> None:
        """A comment after each quiet ``HEARTBEAT_S``; a failed one ends the stream's task."""
        while True:
            quiet = time.monotonic() - self._last_write
            if quiet >= HEARTBEAT_S:
                try:
                    await self.write(b": keep-alive\n\n")
                except ConnectionError:
                    if self._owner is not None:
                        self._owner.cancel()
                    return
                quiet = 0.0
            await asyncio.sleep(HEARTBEAT_S - quiet)
