"""Run each job on a trainer node: place it, call ``Trainer.Train``, relay its events.

Jobs are placed in submission order: one placement loop takes the oldest QUEUED job, waits for a
node with a free slot (or fails the job when placement can never succeed, e.g. ``require_gpu``
with no GPU node), and starts a relay task for it. The relay re-sequences the trainer's events
into the job's log; a trainer ``SUCCEEDED`` becomes the job's ``SUCCEEDED`` only once the model
is in the repository, so a client that sees SUCCEEDED can always fetch the model.

After a restart, ``recover`` re-queues the jobs that were waiting and re-attaches
(``Trainer.Attach`` after the last relayed trainer seq) to those that were running, so they
finish normally; a job whose node no longer knows it is failed with the reason, never left
RUNNING. A node lost mid-job gets the job retried on another node while attempts remain (and the
placement allows a fallback), with the retry visible in the job's events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import replace

from shared import errors
from shared.jobs import ErrorCode, EventKind, JobError, JobEvent, JobKind, JobState, TrainResult
from shared.spec import DataSource, PlacementSpec

from .datasets import DatasetStore
from .jobs import JobBook, JobRecord
from .placement import Choice, Wait, choose
from .registry import RECOVERED, NodeRegistry
from .repository import ModelRepository
from .trainer_client import (
    JobUnknown,
    NoSlot,
    RelayedEvent,
    TrainerCallError,
    TrainerClient,
    Unreachable,
)

_LOGGER = logging.getLogger(__name__)
REATTACH_WINDOW_S = 15.0
"""How long a broken stream (or a restarted orchestrator) keeps re-attaching to a running
job's node before the node counts as lost."""
PLACEMENT_RECHECK_S = 1.0
"""While jobs wait, the placement loop looks again at least this often (probes are cached)."""


class Dispatcher:
    def __init__(
        self,
        book: JobBook,
        registry: NodeRegistry,
        repository: ModelRepository,
        *,
        upload_target: str,
        datasets: DatasetStore | None = None,
        max_attempts: int = 2,
        reattach_window_s: float = REATTACH_WINDOW_S,
        queue_timeout_s: float = 0.0,
    ) -> None:
        self._max_attempts = max_attempts
        self._queue_timeout_s = queue_timeout_s
        self._reattach_window_s = reattach_window_s
        self._book = book
        self._registry = registry
        self._repository = repository
        self._datasets = datasets
        self.upload_target = upload_target
        self._queue: deque[str] = deque()
        self._queued = asyncio.Event()
        self._relays: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._placement_loop(), name="placement")

    def recover(self) -> int:
        """Resume the store's unfinished jobs: re-queue waiting ones, re-attach running ones."""
        jobs = self._book.unfinished()
        for record in jobs:
            if not record.node:
                self.submit(record)
                continue
            self._registry.add(record.node, source=RECOVERED)
            self._registry.claim(record.node, record.job_id)
            self._relays[record.job_id] = asyncio.create_task(
                self._relay(record.job_id, reattach=True), name=f"reattach-{record.job_id}"
            )
        if jobs:
            _LOGGER.info("recovered %d unfinished job(s)", len(jobs))
        return len(jobs)

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._relays.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def submit(self, record: JobRecord) -> None:
        self._queue.append(record.job_id)
        self._queued.set()

    # -- placement ---------------------------------------------------------------------------

    async def _placement_loop(self) -> None:
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            changed = self._registry.changed
            self._queued.clear()
            await self._registry.refresh()
            wake_in = self._place_queued()
            if not self._queue:
                continue
            # Wait for a node or slot to change, a new job, a queue timeout, or the next probe.
            waiters = [
                asyncio.create_task(changed.wait()),
                asyncio.create_task(self._queued.wait()),
            ]
            await asyncio.wait(waiters, timeout=wake_in, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    def _place_queued(self) -> float:
        """Place every queued job a node can take now, in submission order; note why the others
        wait (or fail those past the queue timeout). Returns the seconds until the next wake."""
        statuses = self._registry.statuses()
        waits: dict[PlacementSpec, Wait] = {}  # until the next placement changes the slots
        now = time.time()
        wake_in = PLACEMENT_RECHECK_S
        waiting: deque[str] = deque()
        for job_id in self._queue:
            record = self._book.get(job_id)
            if record.state is not JobState.QUEUED or record.node:  # cancelled while waiting
                continue
            placement = record.request.placement
            outcome: Choice | Wait | None = waits.get(placement)
            if outcome is None:
                try:
                    outcome = choose(placement, statuses)
                except errors.TrainwireError as exc:  # e.g. its named node was forgotten
                    outcome = Wait(exc.message)
            if isinstance(outcome, Choice):
                if self._dataset_gone(record):
                    continue
                self._start(record, outcome)
                statuses = self._registry.statuses()
                waits.clear()
                continue
            waits[placement] = outcome
            if self._queue_timeout_s:
                waited = now - self._book.queued_since(job_id)
                if waited >= self._queue_timeout_s:
                    self._timed_out(record, waited, outcome.reason)
                    continue
                wake_in = min(wake_in, self._queue_timeout_s - waited)
            self._note_wait(record, outcome.reason)
            waiting.append(job_id)
        self._queue = waiting
        return max(wake_in, 0.0)

    def _start(self, record: JobRecord, choice: Choice) -> None:
        job_id = record.job_id
        self._book.place(job_id, choice.address)
        self._registry.claim(choice.address, job_id)
        if choice.note:
            self._lifecycle(job_id, JobState.QUEUED, f"Placement: {choice.note}")
        self._relays[job_id] = asyncio.create_task(self._relay(job_id), name=f"relay-{job_id}")

    def _dataset_gone(self, record: JobRecord) -> bool:
        """Fail a job whose pinned dataset version was deleted while it waited (a stat of
        one manifest; the trainer checks again when it fetches the files)."""
        data = record.request.data
        if data.source is not DataSource.DATASET or self._datasets is None:
            return False
        if self._datasets.has_version(data.dataset, data.dataset_sha256):
            return False
        self._fail(
            record.job_id,
            ErrorCode.DATA_ERROR,
            f"dataset {data.dataset}@{data.dataset_sha256[:12]} was deleted after this job was "
            "submitted; upload it again and resubmit",
            "placement",
        )
        return True

    def _note_wait(self, record: JobRecord, reason: str) -> None:
        """One QUEUED event per reason: a new one only when the reason changes."""
        message = f"Waiting: {reason}"
        if record.message != message:
            self._lifecycle(record.job_id, JobState.QUEUED, message)

    def _timed_out(self, record: JobRecord, waited: float, reason: str) -> None:
        took = f"{waited:.0f}s" if waited >= 10 else f"{waited:.1f}s"
        limit = f"waited {took} in the queue (queue timeout {self._queue_timeout_s:g}s)"
        if record.lost_node_reason:  # a retry after a lost node that found no other node
            why = f"{record.lost_node_reason}; no other node to retry on: {limit}: {reason}"
            self._fail(record.job_id, ErrorCode.NODE_LOST, why, "placement")
        else:
            self._fail(record.job_id, ErrorCode.NODE_UNAVAILABLE, f"{limit}: {reason}", "placement")

    # -- the relay ---------------------------------------------------------------------------

    async def _relay(self, job_id: str, *, reattach: bool = False) -> None:
        """Relay the job's events from its node until the terminal one.

        A broken stream is not a lost node: the trainer keeps the job and its events, so the
        relay re-attaches (``Trainer.Attach`` after the last relayed seq) for up to
        ``reattach_window_s`` — a network blip, a trainer's restart of its listener or an
        orchestrator restart costs nothing. Only when the node stays unreachable for the whole
        window, or no longer knows the job, is the node lost: the job is retried elsewhere when
        the placement allows, else FAILED naming the node.
        """
        node = self._book.get(job_id).node
        lost_since = time.monotonic() if reattach else 0.0
        delay = 0.2
        try:
            client = self._registry.client(node)
            if not reattach:
                await self._book.flushed()  # the placement is committed before the node runs it
            while True:
                try:
                    await self._stream(client, job_id, attach=reattach)
                    if not self._book.get(job_id).state.terminal:
                        self._node_lost(job_id, f"node {node} ended the stream without a result")
                    return
                except TrainerCallError as exc:
                    record = self._book.get(job_id)
                    refused = not (reattach or record.node_seq)
                    if isinstance(exc, NoSlot) and refused:
                        await self._no_slot(job_id, exc.detail or "no free slot")
                        return
                    if isinstance(exc, JobUnknown) and reattach:
                        self._node_lost(
                            job_id, f"node {node} no longer knows this job (it restarted)"
                        )
                        return
                    if not isinstance(exc, Unreachable):
                        raise
                    if record.cancel_requested:
                        self._cancelled(job_id, f"{record.cancel_requested} (node {node} lost)")
                        return
                    now = time.monotonic()
                    lost_since = lost_since or now
                    if now - lost_since >= self._reattach_window_s:
                        self._registry.mark_unreachable(node, f"stream lost: {exc.detail}")
                        self._node_lost(
                            job_id,
                            f"lost node {node} mid-job ({exc.detail}; unreachable for "
                            f"{now - lost_since:.0f}s)",
                        )
                        return
                    if not reattach:
                        _LOGGER.warning(
                            "job %s: stream from %s broke (%s); re-attaching",
                            job_id,
                            node,
                            exc.detail,
                        )
                    reattach = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        except TrainerCallError as exc:
            self._fail(
                job_id,
                ErrorCode.INVALID_REQUEST if exc.invalid_request else ErrorCode.INTERNAL,
                f"node {node} refused the job: {exc.code}: {exc.detail}",
                "trainer",
            )
        except Exception as exc:
            _LOGGER.exception("relay for job %s failed", job_id)
            self._fail(job_id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", "relay")
        finally:
            self._registry.release(node, job_id)
            self._relays.pop(job_id, None)

    async def _stream(self, client: TrainerClient, job_id: str, *, attach: bool) -> None:
        """One Train (or Attach) call: append each new event; return after the terminal one."""
        record = self._book.get(job_id)
        relayed_through = record.node_seq
        events = (
            client.attach(job_id, relayed_through)
            if attach
            else client.train(
                job_id,
                record.request,
                upload_target=self.upload_target,
                upload_token=record.upload_token,
            )
        )
        relayed: RelayedEvent
        async for relayed in events:
            if relayed.node_seq <= relayed_through:
                continue  # already relayed (before a re-attach or a restart)
            event = relayed.event
            if _upload_failed(event) and await self._resend(client, job_id, event):
                return
            if event.state is JobState.SUCCEEDED and record.kind == JobKind.TRAIN.value:
                self._succeed(job_id, event)  # a training job succeeds once its model is stored
            else:
                self._book.append(job_id, event, node_seq=relayed.node_seq)
                relayed_through = relayed.node_seq
            if event.terminal:
                return

    async def _resend(self, client: TrainerClient, job_id: str, failed: JobEvent) -> bool:
        """The node trained the model but could not deliver it (e.g. this orchestrator was down
        past the node's upload window): ask it to send the spooled model again, now."""
        record = self._book.get(job_id)
        reason = failed.error.message if failed.error else "upload failed"
        self._lifecycle(
            job_id, JobState.RUNNING, f"Upload from {record.node} failed ({reason}); re-sending"
        )
        try:
            result = await client.resend_model(
                job_id, upload_target=self.upload_target, upload_token=record.upload_token
            )
        except TrainerCallError as exc:
            _LOGGER.warning("job %s: re-send from %s failed: %s", job_id, record.node, exc)
            return False
        self._succeed(job_id, replace(failed, state=JobState.SUCCEEDED, result=result, error=None))
        return True

    async def _no_slot(self, job_id: str, detail: str) -> None:
        """The node refused the job for want of a slot (jobs this orchestrator did not place
        there, say): back to the head of the queue, no attempt used, the node's slots read
        again."""
        node = self._book.get(job_id).node
        self._registry.release(node, job_id)
        await self._registry.refused_for_slots(node, detail)
        record = self._book.get(job_id)
        if record.cancel_requested:
            self._cancelled(job_id, record.cancel_requested)
            return
        self._book.return_to_queue(job_id)
        self._lifecycle(
            job_id, JobState.QUEUED, f"Waiting: node {node} has no free slot ({detail})"
        )
        self._queue.appendleft(job_id)
        self._queued.set()

    def _node_lost(self, job_id: str, why: str) -> None:
        record = self._book.get(job_id)
        if self._may_retry(record):
            self._retry(record, why)
        else:
            self._fail(job_id, ErrorCode.NODE_LOST, why, "relay")

    def _may_retry(self, record: JobRecord) -> bool:
        placement = record.request.placement
        if record.attempt >= self._max_attempts:
            return False
        return not (placement.node and not placement.allow_fallback)

    def _retry(self, record: JobRecord, why: str) -> None:
        attempts = f"attempt {record.attempt + 1}/{self._max_attempts}"
        self._lifecycle(record.job_id, JobState.QUEUED, f"Retrying ({attempts}): {why}")
        self._book.retry(record.job_id, why)
        self._queue.appendleft(record.job_id)
        self._queued.set()

    def _succeed(self, job_id: str, event: JobEvent) -> None:
        ref = self._repository.by_job(job_id)
        if ref is None:
            self._fail(
                job_id,
                ErrorCode.UPLOAD_FAILED,
                f"node {self._book.get(job_id).node} reported success but no model was stored",
                "upload",
            )
            return
        result = event.result or TrainResult()
        # The stored model says what it was trained on and how good it is, also when the
        # node's own result (e.g. of a re-sent upload) does not.
        result = replace(
            result,
            model=ref,
            data=result.data or ref.data,
            assessment=result.assessment or ref.assessment,
        )
        if ref.job_id == job_id:
            stored = f"model {ref.name} stored (sha256 {ref.sha256[:12]}…)"
        else:  # the repository kept the newest version, byte for byte the same model
            stored = (
                f"model identical to v{ref.version} ({ref.name}, sha256 {ref.sha256[:12]}…), "
                "not stored again"
            )
        self._lifecycle(
            job_id,
            JobState.SUCCEEDED,
            f"Succeeded: {stored}",
            percentage=100.0,
            device=event.device,
            result=result,
        )

    # -- cancellation ------------------------------------------------------------------------

    async def cancel(self, job_id: str, reason: str) -> JobRecord:
        record = await self._book.fetch(job_id)
        reason = reason or "cancelled by request"
        if record.state.terminal:
            return record
        record = self._book.request_cancel(job_id, reason)
        if record.state is JobState.QUEUED and not record.node:
            self._cancelled(job_id, reason)
            return self._book.get(job_id)
        try:
            await self._registry.client(record.node).cancel(job_id, reason)
        except TrainerCallError as exc:
            _LOGGER.warning("cancel of job %s on %s failed: %s", job_id, record.node, exc)
            relay = self._relays.get(job_id)
            if relay is not None:
                relay.cancel()
            self._cancelled(job_id, f"{reason} (node {record.node} unreachable)")
        return self._book.get(job_id)

    # -- terminal helpers --------------------------------------------------------------------

    def _lifecycle(
        self,
        job_id: str,
        state: JobState,
        message: str,
        error: JobError | None = None,
        *,
        percentage: float = 0.0,
        device: str = "",
        result: TrainResult | None = None,
    ) -> None:
        """Append an orchestrator-side event (its node is the job's current node)."""
        self._book.append(
            job_id,
            JobEvent(
                job_id=job_id,
                seq=0,
                time=time.time(),
                state=state,
                kind=EventKind.LIFECYCLE,
                percentage=percentage,
                message=message,
                device=device,
                result=result,
                error=error,
            ),
        )

    def _fail(self, job_id: str, code: ErrorCode, message: str, where: str) -> None:
        _LOGGER.warning("job %s failed: %s", job_id, message)
        self._lifecycle(
            job_id,
            JobState.FAILED,
            f"Failed: {message}",
            JobError(code=code.value, message=message, where=where),
        )

    def _cancelled(self, job_id: str, reason: str) -> None:
        self._lifecycle(
            job_id,
            JobState.CANCELLED,
            f"Cancelled: {reason}",
            JobError(code=ErrorCode.CANCELLED.value, message=reason, where="orchestrator"),
        )


def _upload_failed(event: JobEvent) -> bool:
    return (
        event.state is JobState.FAILED
        and event.error is not None
        and event.error.code == ErrorCode.UPLOAD_FAILED.value
    )
