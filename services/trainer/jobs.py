"""Run jobs on this node: the pipeline in a worker thread, events into a per-job log.

Why a worker thread and not a process: the pipeline is torch code that releases the GIL in its
kernels, the cancellation token is a ``threading.Event`` checked every batch (no IPC on the
cancel path), and events reach the event loop through ``call_soon_threadsafe`` with no pickling.
Each job's events go to an append-only log, so any number of streams (``Train``, then ``Attach``
after the orchestrator reconnects) read it from any seq with no gap and no duplicate; a stream
that goes away never blocks or stops the job — only ``Cancel`` does.

The model is spooled in the job's directory (``work_dir/jobs/<job>/``) until the orchestrator's
receipt says it is stored; only then is the directory deleted. A job id is one plain name
(``shared.ids.check_job_id``), checked at every entry point, and every path built from one is
resolved and checked to lie inside ``work_dir/jobs`` before anything is created, read or
removed; ``jobs/`` is private to the trainer's user (0700). The upload resumes from what the
orchestrator confirms it holds, and rides out an orchestrator restart by retrying UNAVAILABLE for
``upload_window_s``. A model that never got its receipt (the upload failed for good, or the job
was cancelled or the node shut down mid-upload) stays spooled, with an ``upload.json`` saying
what it is, for the newest ``keep_failed_spools`` such jobs and at most ``spool_ttl_s``. A
trainer that starts removes every job directory without a valid note: a process that just
started runs no job, and a model with no note (the trainer was killed) can never be re-sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shared import errors
from shared.cancellation import CancellationToken, CancelledError
from shared.ids import check_job_id
from shared.job_requests import BacktestRequest, JobRequest
from shared.jobs import (
    ErrorCode,
    EventKind,
    JobError,
    JobEvent,
    JobState,
    ModelRef,
    TrainResult,
    event_from_update,
)
from shared.pipeline.market import DataError
from shared.pipeline.run import TrainingOutcome
from shared.progress.update import ProgressUpdate
from shared.results import BacktestSummary, OptimizationSummary
from shared.rpc.plumbing import INSECURE, Security
from shared.runs.optimize import OptimizationJobCancelled, configuration_sha256
from shared.spec import DEFAULT_LIMITS, DataSource, JobLimits, SpecError

from .configuration_upload import store_configuration
from .datasets import DatasetCache
from .kinds import KindOutcome, PipelineFn, RunContext, run_kind, success_message
from .model_fetch import fetch_model
from .paths import OutsideWorkDirError as OutsideWorkDirError
from .paths import resolve_inside as resolve_inside
from .uploader import GzipOptions, Uploader, UploadError, UploadTask

_LOGGER = logging.getLogger(__name__)

UPLOAD_SHARE = 2.0
"""Percent of the bar kept for the upload: the pipeline fills 0..98, a stored model makes 100."""
KEEP_FINISHED = 256
"""Finished jobs kept for Attach and GetInfo before the oldest are forgotten."""
KEEP_FAILED_SPOOLS = 8
"""Spools of models whose upload failed, newest first, kept for a re-send."""
SPOOL_TTL_S = 24 * 3600.0
"""How long such a spool is kept at most."""
SPOOL_NOTE = "upload.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, kw_only=True)
class SpoolNote:
    """What ``upload.json`` says about a spooled model: enough to send it again."""

    artifact: Path
    sha256: str
    size_bytes: int
    device: str
    training_metrics: dict[str, float]
    test_metrics: dict[str, float]
    feature_importance: dict[str, float]


def read_spool_note(job_dir: Path) -> SpoolNote | None:
    """The note of a spool in ``job_dir``, or None unless it is whole: a JSON object naming an
    artifact inside ``job_dir`` that exists with the noted size, and a sha256."""
    try:
        raw = json.loads((job_dir / SPOOL_NOTE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("artifact"), str):
        return None
    sha256, size = raw.get("sha256"), raw.get("size_bytes")
    if not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        return None
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        return None
    try:
        artifact = resolve_inside(job_dir, raw["artifact"])
        if not artifact.is_file() or artifact.stat().st_size != size:
            return None
    except (OSError, OutsideWorkDirError):
        return None
    return SpoolNote(
        artifact=artifact,
        sha256=sha256,
        size_bytes=size,
        device=str(raw.get("device", "")),
        training_metrics=_numbers(raw.get("training_metrics")),
        test_metrics=_numbers(raw.get("test_metrics")),
        feature_importance=_numbers(raw.get("feature_importance")),
    )


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if missing; the directory itself is made 0700."""
    if not path.is_dir():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    job_id: str
    request: JobRequest
    upload_target: str
    upload_token: str


def train_result(outcome: TrainingOutcome, model: ModelRef | None, device: str) -> TrainResult:
    """A training job's result: the one place it is built from the pipeline's outcome."""
    return TrainResult(
        model=model,
        training_metrics=dict(outcome.train_metrics),
        test_metrics=dict(outcome.test_metrics),
        feature_importance=dict(outcome.feature_importance),
        device=device,
        data=outcome.data,
        assessment=outcome.assessment,
        backtest=outcome.backtest,
    )


class JobRun:
    """One job's state and event log. Lives on the event loop; the pipeline thread only calls
    ``_from_thread`` through ``call_soon_threadsafe``."""

    def __init__(self, spec: JobSpec, *, node: str, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.job_id = spec.job_id
        self.node = node
        self.device = ""
        self.token = CancellationToken()
        self.cancel_requested_at = 0.0
        self.state = JobState.QUEUED
        self.events: list[JobEvent] = []
        self.started = time.monotonic()
        self._loop = loop
        self._changed = asyncio.Event()
        self._percentage = 0.0
        self.task: asyncio.Task[None] | None = None

    # -- the log -----------------------------------------------------------------------------

    def emit(self, event: JobEvent) -> JobEvent:
        return self._append(
            replace(
                event,
                job_id=self.job_id,
                seq=len(self.events) + 1,
                node=self.node,
                device=event.device or self.device,
            )
        )

    def _append(self, event: JobEvent) -> JobEvent:
        """Append an event already stamped with this job's id, next seq, node and device."""
        self._percentage = max(self._percentage, event.percentage)
        self.state = event.state
        self.events.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event

    def lifecycle(
        self,
        state: JobState,
        message: str,
        *,
        kind: EventKind = EventKind.LIFECYCLE,
        percentage: float | None = None,
        result: TrainResult | None = None,
        error: JobError | None = None,
        backtest_result: BacktestSummary | None = None,
        optimize_result: OptimizationSummary | None = None,
    ) -> JobEvent:
        return self.emit(
            JobEvent(
                job_id=self.job_id,
                seq=0,
                time=time.time(),
                state=state,
                kind=kind,
                percentage=self._percentage if percentage is None else percentage,
                message=message,
                result=result,
                error=error,
                backtest_result=backtest_result,
                optimize_result=optimize_result,
            )
        )

    async def events_after(self, after_seq: int) -> AsyncIterator[JobEvent]:
        """Every event with seq > after_seq, then each new one, until the terminal event."""
        next_index = max(after_seq, 0)
        while True:
            changed = self._changed
            while next_index < len(self.events):
                event = self.events[next_index]
                next_index += 1
                yield event
                if event.terminal:
                    return
            if self.events and self.events[-1].terminal:
                return
            await changed.wait()

    @property
    def finished(self) -> bool:
        return self.state.terminal

    # -- the pipeline thread's side ----------------------------------------------------------

    def progress_sink(self, update: ProgressUpdate) -> None:
        """Called on the training thread for every update the tracker lets through."""
        self._loop.call_soon_threadsafe(self._from_thread, update)

    def _from_thread(self, update: ProgressUpdate) -> None:
        if self.finished:
            return
        # Built once, stamped in place: this runs for every update the tracker lets through.
        self._append(
            event_from_update(
                update,
                job_id=self.job_id,
                seq=len(self.events) + 1,
                time=time.time(),
                node=self.node,
                device=self.device,
                percentage_scale=(100.0 - UPLOAD_SHARE) / 100.0,
            )
        )


class JobRunner:
    """The node's jobs: admission by slots, the pipeline on a thread pool, upload, cleanup."""

    def __init__(
        self,
        *,
        work_dir: Path,
        slots: int,
        node: str,
        pipeline: PipelineFn,
        data_dir: Path | None = None,
        device: str = "",
        upload_attempts: int = 4,
        upload_backoff_s: float = 0.5,
        upload_window_s: float = 300.0,
        upload_workers: int = 0,
        keep_failed_spools: int = KEEP_FAILED_SPOOLS,
        spool_ttl_s: float = SPOOL_TTL_S,
        security: Security = INSECURE,
        limits: JobLimits = DEFAULT_LIMITS,
    ) -> None:
        self._security = security
        self._limits = limits
        self._work_dir = work_dir
        if not work_dir.is_dir():
            _private_dir(work_dir)
        _private_dir(work_dir / "jobs")
        self._jobs_root = (work_dir / "jobs").resolve()
        self._slots = slots
        self.node = node
        self._pipeline = pipeline
        self._data_dir = data_dir
        self._device = device
        self._upload_attempts = upload_attempts
        self._upload_backoff_s = upload_backoff_s
        self._upload_window_s = upload_window_s
        self.on_cancelled: Callable[[float], None] | None = None
        """Called with the seconds from Cancel to the CANCELLED event (the latency metric)."""
        self._upload_workers = upload_workers
        self._keep_failed_spools = keep_failed_spools
        self._spool_ttl_s = spool_ttl_s
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="train")
        self._runs: OrderedDict[str, JobRun] = OrderedDict()
        self.datasets = DatasetCache(work_dir, security)
        """Uploaded datasets fetched from the orchestrator, cached by hash for every job."""
        self.accepting = True
        self._prune_spools(at_start=True, busy=set())

    @property
    def slots(self) -> int:
        return self._slots

    def runs(self) -> list[JobRun]:
        """Every job this node still holds (running and recently finished)."""
        return list(self._runs.values())

    def running(self) -> list[JobRun]:
        return [r for r in self._runs.values() if not r.finished]

    def get(self, job_id: str) -> JobRun:
        run = self._runs.get(check_job_id(job_id))
        if run is None:
            raise errors.NotFoundError(f"no job {job_id!r} on this node", field="job_id")
        return run

    def start(self, spec: JobSpec) -> JobRun:
        """Start a job, or return it if this job id is already known (a retried Train call)."""
        job_dir = self._job_dir(spec.job_id)
        existing = self._runs.get(spec.job_id)
        if existing is not None:
            return existing
        if not self.accepting:
            raise errors.UnavailableError("this node is draining and takes no new jobs")
        if len(self.running()) >= self._slots:
            raise errors.ResourceExhaustedError(
                f"all {self._slots} slot(s) of this node are busy; retry later or use another node"
            )
        run = JobRun(spec, node=self.node, loop=asyncio.get_running_loop())
        self._runs[spec.job_id] = run
        self._forget_old()
        run.task = asyncio.create_task(self._run(run, job_dir), name=f"job-{spec.job_id}")
        return run

    def _job_dir(self, job_id: str) -> Path:
        """``work_dir/jobs/<job_id>``, after checking the id and that the path (symlinks
        resolved) is that very directory, inside the work dir; raise otherwise."""
        path = resolve_inside(self._jobs_root, check_job_id(job_id))
        if path != self._jobs_root / job_id:
            raise OutsideWorkDirError(f"{self._jobs_root / job_id} is a link; not touching it")
        return path

    def cancel(self, job_id: str, reason: str) -> JobState:
        run = self.get(job_id)
        if not run.finished:
            _LOGGER.info("cancelling job %s: %s", job_id, reason or "cancelled")
            run.cancel_requested_at = run.cancel_requested_at or time.monotonic()
            run.token.cancel(reason or "cancelled by request")
        return run.state

    async def shutdown(self, grace_s: float) -> None:
        """Stop taking jobs, let running ones finish for ``grace_s``, then cancel them."""
        self.accepting = False
        tasks = [r.task for r in self.running() if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            if pending:
                for run in self.running():
                    run.token.cancel("node shutting down")
                await asyncio.wait(pending, timeout=30)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [k for k, r in self._runs.items() if r.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._runs[job_id]

    async def _run(self, run: JobRun, job_dir: Path) -> None:
        run.lifecycle(JobState.RUNNING, f"Started on {self.node}", percentage=0.0)
        unsent: TrainingOutcome | None = None  # a model spooled here, with no receipt yet
        try:
            dataset_dir = await self._fetch_dataset(run, job_dir)
            model_dir = await self._fetch_model(run, job_dir)
            outcome = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._call_runner, run, job_dir, dataset_dir, model_dir
            )
            if isinstance(outcome, TrainingOutcome):
                run.device = outcome.device
                unsent = outcome
                await self._upload(run, outcome)
                unsent = None
            else:
                if isinstance(outcome, OptimizationSummary) and outcome.configuration_json:
                    outcome = await self._store_configuration(run, outcome)
                run.lifecycle(
                    JobState.SUCCEEDED,
                    success_message(outcome),
                    percentage=100.0,
                    backtest_result=outcome if isinstance(outcome, BacktestSummary) else None,
                    optimize_result=outcome if isinstance(outcome, OptimizationSummary) else None,
                )
        except CancelledError as exc:
            partial = exc.summary if isinstance(exc, OptimizationJobCancelled) else None
            run.lifecycle(
                JobState.CANCELLED,
                f"Cancelled: {exc.reason}",
                error=JobError(
                    code=ErrorCode.CANCELLED.value, message=exc.reason, where=self._where(run)
                ),
                optimize_result=partial,
            )
            if run.cancel_requested_at and self.on_cancelled is not None:
                self.on_cancelled(time.monotonic() - run.cancel_requested_at)
        except SpecError as exc:
            run.lifecycle(
                JobState.FAILED,
                f"Invalid request: {exc}",
                error=JobError(
                    code=ErrorCode.INVALID_REQUEST.value, message=str(exc), where="validate"
                ),
            )
        except errors.InvalidArgumentError as exc:
            text = f"{exc.field}: {exc.message}" if exc.field else exc.message
            run.lifecycle(
                JobState.FAILED,
                f"Invalid request: {text}",
                error=JobError(
                    code=ErrorCode.INVALID_REQUEST.value, message=text, where="validate"
                ),
            )
        except UploadError as exc:
            run.lifecycle(
                JobState.FAILED,
                f"Upload failed: {exc}",
                error=JobError(
                    code=ErrorCode.UPLOAD_FAILED.value, message=str(exc), where="upload"
                ),
            )
        except DataError as exc:  # missing file, NaNs, unsorted bars, too few bars
            run.lifecycle(
                JobState.FAILED,
                f"Failed: {exc}",
                error=JobError(
                    code=ErrorCode.DATA_ERROR.value, message=str(exc), where=self._where(run)
                ),
            )
        except Exception as exc:
            _LOGGER.exception("job %s crashed", run.job_id)
            run.lifecycle(
                JobState.FAILED,
                f"Failed: {type(exc).__name__}: {exc}",
                error=JobError(
                    code=ErrorCode.INTERNAL.value,
                    message=f"{type(exc).__name__}: {exc}",
                    where=self._where(run),
                ),
            )
        finally:
            # Off the loop: removing a job dir (a model of hundreds of MB) takes tens of ms.
            if unsent is None:
                await asyncio.to_thread(shutil.rmtree, job_dir, True)
            else:
                await self._keep_spool(run, job_dir, unsent)

    async def _keep_spool(self, run: JobRun, job_dir: Path, outcome: TrainingOutcome) -> None:
        """Keep an unsent model for a re-send, with a note saying what it is."""
        error = run.events[-1].error if run.events else None
        note = {
            "job_id": run.job_id,
            "artifact": str(outcome.artifact_path),
            "sha256": outcome.sha256,
            "size_bytes": outcome.size_bytes,
            "upload_target": run.spec.upload_target,
            "failed_at": time.time(),
            "error": error.message if error else "",
            "device": run.device,
            "training_metrics": dict(outcome.train_metrics),
            "test_metrics": dict(outcome.test_metrics),
            "feature_importance": dict(outcome.feature_importance),
        }
        busy = {r.job_id for r in self.running()}
        await asyncio.to_thread(self._write_note_and_prune, run.job_id, job_dir, note, busy)
        _LOGGER.warning(
            "job %s: the model was not stored; kept at %s for a re-send",
            run.job_id,
            outcome.artifact_path,
        )

    def _write_note_and_prune(
        self, job_id: str, job_dir: Path, note: dict[str, Any], busy: set[str]
    ) -> None:
        try:
            (job_dir / SPOOL_NOTE).write_text(json.dumps(note, indent=2))
        except OSError as exc:
            _LOGGER.warning("cannot write the spool note of job %s: %s", job_id, exc)
        self._prune_spools(at_start=False, busy=busy)

    def _prune_spools(self, *, at_start: bool, busy: set[str]) -> None:
        """Delete spools past the newest ``keep_failed_spools`` or older than the TTL, never
        the directory of a job in ``busy``. ``at_start``: also delete every entry of
        ``jobs/`` that is not a spool with a valid note (a link is unlinked, never followed).
        Blocking file work: call it on a worker thread once the node serves."""
        spools: list[tuple[float, Path]] = []
        try:
            entries = list(self._jobs_root.iterdir())
        except OSError as exc:
            _LOGGER.warning("cannot list %s: %s", self._jobs_root, exc)
            return
        for path in entries:
            if path.name in busy:
                continue
            try:
                if path.is_symlink() or not path.is_dir():
                    if at_start:
                        _LOGGER.info("dropping %s: not a job directory", path)
                        path.unlink(missing_ok=True)
                    continue
                if read_spool_note(path) is None:
                    if at_start:
                        _LOGGER.info("dropping %s: no upload note, it can never be re-sent", path)
                        shutil.rmtree(path, ignore_errors=True)
                    continue
                spools.append((path.stat().st_mtime, path))
            except OSError as exc:
                _LOGGER.warning("cannot inspect %s: %s", path, exc)
        spools.sort(reverse=True)
        cutoff = time.time() - self._spool_ttl_s
        for index, (mtime, path) in enumerate(spools):
            if index >= self._keep_failed_spools or mtime < cutoff:
                _LOGGER.info("dropping the spool %s", path)
                shutil.rmtree(path, ignore_errors=True)

    async def _fetch_dataset(self, run: JobRun, job_dir: Path) -> Path | None:
        """A dataset job's files, fetched from the orchestrator unless cached, in a directory of
        the job's own; None for other sources."""
        data = run.spec.request.data
        if data.source is not DataSource.DATASET:
            return None

        def notify(message: str) -> None:
            run.lifecycle(JobState.RUNNING, message)

        return await self.datasets.prepare(
            data,
            orchestrator=run.spec.upload_target,
            job_dir=job_dir,
            notify=notify,
            cancel=run.token,
        )

    async def _store_configuration(
        self, run: JobRun, outcome: OptimizationSummary
    ) -> OptimizationSummary:
        """Store the best configuration in the orchestrator's repository (before the job
        succeeds: a finished job takes no configuration) and name it in the result."""
        run.lifecycle(
            JobState.RUNNING,
            f"Storing the best configuration at {run.spec.upload_target}",
            kind=EventKind.UPLOAD,
        )
        ref = await store_configuration(
            target=run.spec.upload_target,
            job_id=run.job_id,
            token=run.spec.upload_token,
            text=outcome.configuration_json,
            sha256=configuration_sha256(outcome.configuration_json),
            security=self._security,
            attempts=self._upload_attempts,
            backoff_s=self._upload_backoff_s,
            unavailable_window_s=self._upload_window_s,
            cancel=run.token,
        )
        return replace(outcome, configuration=ref)

    async def _fetch_model(self, run: JobRun, job_dir: Path) -> Path | None:
        """A model backtest's model, from the orchestrator; None for other jobs."""
        request = run.spec.request
        if not isinstance(request, BacktestRequest) or not request.model:
            return None
        run.lifecycle(JobState.RUNNING, f"Fetching model {request.model}")
        await asyncio.to_thread(job_dir.mkdir, mode=0o700, exist_ok=True)
        return await fetch_model(
            orchestrator=run.spec.upload_target,
            name=request.model,
            job_dir=job_dir,
            security=self._security,
            cancel=run.token,
        )

    def _call_runner(
        self,
        run: JobRun,
        job_dir: Path,
        dataset_dir: Path | None = None,
        model_dir: Path | None = None,
    ) -> KindOutcome:
        """The job's kind runner, on a worker thread (``services.trainer.kinds``)."""
        job_dir.mkdir(mode=0o700, exist_ok=True)
        context = RunContext(
            work_dir=job_dir,
            progress=run.progress_sink,
            cancel=run.token,
            data_dir=self._data_dir,
            dataset_dir=dataset_dir,
            device=run.spec.request.placement.device or self._device,
            limits=self._limits,
            model_dir=model_dir,
        )
        return run_kind(run.spec.request, context, self._pipeline)

    async def resend(self, job_id: str, target: str, token: str) -> TrainResult:
        """Upload again the spooled model of a job whose upload failed; delete the spool once
        the orchestrator confirms it stored the model."""
        job_dir = self._job_dir(job_id)
        run = self._runs.get(job_id)
        if run is not None and not run.finished:
            raise errors.FailedPreconditionError(
                f"job {job_id} is still running; its upload is in progress", field="job_id"
            )
        note = await asyncio.to_thread(read_spool_note, job_dir)
        if note is None:
            raise errors.NotFoundError(
                f"no spooled model for job {job_id} on this node (never failed to upload, "
                "already sent, or pruned; or its upload note is unreadable)",
                field="job_id",
            )
        _LOGGER.info("job %s: re-sending the spooled model to %s", job_id, target)
        ref = await self._send(job_id, target, token, note.artifact, note.sha256, note.size_bytes)
        await asyncio.to_thread(shutil.rmtree, job_dir, True)
        return TrainResult(  # a re-send knows what its note kept, no more
            model=ref,
            training_metrics=note.training_metrics,
            test_metrics=note.test_metrics,
            feature_importance=note.feature_importance,
            device=note.device,
        )

    async def _send(
        self,
        job_id: str,
        target: str,
        token: str,
        path: Path,
        sha256: str,
        size_bytes: int,
        *,
        cancel: CancellationToken | None = None,
    ) -> ModelRef:
        """Upload one model file with this node's retry, window and compression settings."""
        task = UploadTask(
            target=target,
            job_id=job_id,
            token=token,
            path=path,
            sha256=sha256,
            size_bytes=size_bytes,
            security=self._security,
        )
        return await Uploader(
            task,
            attempts=self._upload_attempts,
            backoff_s=self._upload_backoff_s,
            unavailable_window_s=self._upload_window_s,
            options=GzipOptions(workers=self._upload_workers),
            cancel=cancel,
        ).run()

    async def _upload(self, run: JobRun, outcome: TrainingOutcome) -> None:
        run.token.raise_if_cancelled()
        size = outcome.size_bytes
        run.lifecycle(
            JobState.RUNNING,
            f"Uploading model ({size / 1e6:.2f} MB, gzip) to {run.spec.upload_target}",
            kind=EventKind.UPLOAD,
        )
        ref = await self._send(
            run.job_id,
            run.spec.upload_target,
            run.spec.upload_token,
            outcome.artifact_path,
            outcome.sha256,
            size,
            cancel=run.token,
        )
        result = train_result(outcome, ref, run.device)
        run.lifecycle(
            JobState.SUCCEEDED,
            f"Model stored as {ref.name} (sha256 {ref.sha256[:12]}…)",
            percentage=100.0,
            result=result,
        )

    @staticmethod
    def _where(run: JobRun) -> str:
        for event in reversed(run.events):
            if event.step_name:
                return event.step_name
        return "start"
