"""Follow a job's event stream in the terminal: live bars on a TTY, plain lines otherwise,
or one JSON object per event (``--json``) for scripts.

Live display, four bars (fitted to the terminal's width, 80 columns included):

- ``Overall``: the job's percentage, its ETA and the latest thing it did;
- ``Step i/n``: the current step's percentage and name (its ETA while training);
- ``Epoch``: epochs done of the total and the last epoch's metrics;
- ``Batch``: the batch of the epoch now running and the time left in that epoch.

ETAs are the trainer's (``eta_seconds``, from its measured time per batch), counted down
between events; they are never estimated from how fast events arrive, which says nothing about
the job (a resumed watch replays hours of events in a second). Step changes, finished epochs,
lifecycle and upload events and warnings are printed above the bars, one line each, cut to the
terminal's width rather than wrapped.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from shared.jobs import EventKind, JobEvent, JobState


def event_json(event: JobEvent) -> str:
    def convert(value: Any) -> Any:
        if isinstance(value, JobState | EventKind):
            return value.value
        if isinstance(value, float) and not math.isfinite(value):
            return None  # an undefined stat (no trades): null, so the line stays JSON
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    raw = {k: v for k, v in asdict(event).items() if v not in (None, "", {}, 0, 0.0)}
    raw["seq"] = event.seq
    raw["state"] = event.state.value
    raw["percentage"] = round(event.percentage, 3)
    return json.dumps(convert(raw), sort_keys=True)


_SHORT = {"accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}


def metrics_text(metrics: Mapping[str, float]) -> str:
    """``loss 0.9811 · acc 0.512 · val_loss 0.9933 · val_acc 0.501`` (what is present)."""
    parts = []
    for key, fmt in (("loss", ".4f"), ("accuracy", ".3f"), ("val_loss", ".4f"),
                     ("val_accuracy", ".3f")):  # fmt: skip
        if key in metrics:
            parts.append(f"{_SHORT.get(key, key)} {metrics[key]:{fmt}}")
    return " · ".join(parts)


def epoch_line(event: JobEvent) -> str:
    """A finished epoch on one short line: ``Epoch 3/10 · loss 0.9811 · acc 0.512 · …``."""
    text = metrics_text(event.metrics)
    head = f"Epoch {event.epoch}/{event.total_epochs}"
    return f"{head} · {text}" if text else head


def clock(seconds: float | None) -> str:
    """At most 7 characters: ``0:04:12``, then ``14h03m``, then ``3d04h``."""
    if seconds is None:
        return "-:--:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    if hours < 10:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    if hours < 100:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


class EtaColumn(ProgressColumn):
    """The task's ``eta`` field (seconds, set with ``eta_at``, the monotonic time it was
    measured), counted down at each redraw; ``-:--:--`` when the task has none."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            return Text("", style="progress.remaining")
        left = max(0.0, eta - (time.monotonic() - task.fields.get("eta_at", time.monotonic())))
        return Text(clock(left), style="progress.remaining")


class LiveRenderer:
    """Overall, step, epoch and batch bars, with one-line notes printed above them.

    ``services.follow_kinds.JobRenderer`` adds the bars of backtests and optimizations."""

    progress_class: type[Progress] = Progress

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = self.progress_class(
            TextColumn(
                "{task.description}",
                table_column=Column(width=10, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=2, min_width=8)),
            TextColumn(
                "{task.fields[amount]}",
                table_column=Column(width=7, justify="right", no_wrap=True),
            ),
            EtaColumn(table_column=Column(width=7, no_wrap=True)),
            TextColumn(
                "{task.fields[info]}",
                table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis"),
            ),
            console=console,
            transient=False,
            refresh_per_second=8,
            expand=True,
        )
        self.overall: TaskID = self._task("Overall")
        self.step: TaskID = self._task("Step")
        self.epoch: TaskID | None = None
        self.batch: TaskID | None = None
        self._last_step = 0
        self._training_step = 0
        self._last_epoch = 0

    def _task(self, name: str) -> TaskID:
        return self.progress.add_task(name, total=100, amount="", info="", eta=None, eta_at=0.0)

    def __enter__(self) -> LiveRenderer:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def note(self, text: str, style: str = "") -> None:
        """One line above the bars: the time, then ``text`` cut (never wrapped) to the width."""
        line = Text(f"{datetime.now():%H:%M:%S} ", style="log.time")
        line.append(text, style=style)
        self.console.print(line, no_wrap=True, overflow="ellipsis", crop=True)

    def update(self, event: JobEvent) -> None:
        p = self.progress
        now = time.monotonic()
        overall: dict[str, Any] = {
            "completed": event.percentage,
            "amount": f"{event.percentage:.1f}%",
            "eta": event.eta_seconds,
            "eta_at": now,
        }
        if event.kind not in (EventKind.BATCH, EventKind.WARNING):
            overall["info"] = escape(event.message)  # "[trades]" is text, not markup
        p.update(self.overall, **overall)
        if event.step_index:
            if event.step_index != self._last_step:
                self._last_step = event.step_index
                self.note(f"Step {event.step_index}/{event.step_total}: {event.step_name}")
            training = bool(event.total_batches)
            p.update(
                self.step,
                description=f"Step {event.step_index}/{event.step_total}",
                completed=event.step_percentage,
                amount=f"{event.step_percentage:.1f}%",
                info=event.step_name,
                eta=event.eta_seconds if training else None,
                eta_at=now,
            )
        if event.total_epochs:
            self._training(event, now)
        elif event.step_index > self._training_step > 0:
            self._trained()
        if event.kind is EventKind.WARNING:
            self.note(f"warning: {event.message}", style="yellow")
        elif event.kind is EventKind.EPOCH:
            self.note(epoch_line(event))
        elif event.kind in (EventKind.LIFECYCLE, EventKind.UPLOAD):
            self.note(event.message, style="bold" if event.terminal else "")

    def _task_of(self, task_id: TaskID) -> Task:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _trained(self) -> None:
        """Training is over (a later step began): the batch bar ends with the last epoch run,
        and an epoch bar short of its total says the run stopped early."""
        self._training_step = 0
        p = self.progress
        if self.batch is not None:
            total = int(self._task_of(self.batch).total or 0)
            p.update(self.batch, completed=total, amount=f"{total}/{total}", eta=None,
                     info=f"epoch {self._last_epoch}")  # fmt: skip
        if self.epoch is not None:
            task = self._task_of(self.epoch)
            if task.total and task.completed < task.total:
                info = task.fields.get("info", "")
                p.update(self.epoch, info=f"stopped early · {info}" if info else "stopped early")

    def _training(self, event: JobEvent, now: float) -> None:
        p = self.progress
        self._training_step = event.step_index
        epochs, batches = event.total_epochs, event.total_batches
        if event.kind is EventKind.EPOCH:
            self._last_epoch = event.epoch
        # Epochs finished so far; a BATCH event is inside epoch ``event.epoch``.
        done = event.epoch if event.kind is EventKind.EPOCH else max(0, event.epoch - 1)
        if self.epoch is None:
            self.epoch = self._task("Epoch")
        fields: dict[str, Any] = {"completed": done, "total": epochs, "amount": f"{done}/{epochs}"}
        if event.kind is EventKind.EPOCH:
            fields["info"] = metrics_text(event.metrics)
        p.update(self.epoch, **fields)
        if not batches:
            return
        if self.batch is None:
            self.batch = self._task("Batch")
        if event.kind is EventKind.EPOCH and event.epoch < epochs:
            # The epoch is over and the next one has begun: its batch bar starts empty, rather
            # than staying full until (maybe after several fast epochs) a batch is reported.
            current, batch = event.epoch + 1, 0
        else:
            current, batch = event.epoch, event.batch
        left_in_training = epochs * batches - ((current - 1) * batches + batch)
        eta = None
        if event.eta_seconds is not None and left_in_training > 0:
            eta = event.eta_seconds * (batches - batch) / left_in_training
        info: dict[str, Any] = {"info": f"epoch {current}"}
        if event.kind is EventKind.BATCH and "loss" in event.metrics:
            info["info"] = f"epoch {current} · loss {event.metrics['loss']:.4f}"
        p.update(
            self.batch,
            completed=batch,
            total=batches,
            amount=f"{batch}/{batches}",
            eta=eta,
            eta_at=now,
            **info,
        )


def plain_line(event: JobEvent) -> str | None:
    """The plain-mode line of an event (None for batches that are not an epoch's last)."""
    if event.kind is EventKind.WARNING:
        return f"{event.seq:>6}  warning: {event.message}"
    if event.kind is EventKind.BATCH and event.batch != event.total_batches:
        return None
    return f"{event.seq:>6}  [{event.percentage:5.1f}%] {event.message}"


class PlainFilter:
    """Which events plain mode prints: all but batches inside an epoch and, of the candle
    counts, the first of each backtest stage, until an optimization's trials begin (from then
    on each finished trial has its line; its candles would bury them)."""

    def __init__(self) -> None:
        self._stage = ""
        self._trials = False

    def line(self, event: JobEvent) -> str | None:
        if event.kind is EventKind.TRIAL:
            self._trials = True
        if event.items is not None and event.items.name == "candles":
            if self._trials or event.stage == self._stage:
                return None
            self._stage = event.stage
        elif event.kind is not EventKind.DETAIL:
            self._stage = ""
        return plain_line(event)


@contextlib.contextmanager
def quiet_control_echo(stream: TextIO) -> Iterator[None]:
    """While the bars are drawn, the terminal does not echo ``^C``: the echo would land after
    the last bar and push the display down a line, so the next redraw (or the final one after
    Ctrl-C) would draw the Overall bar twice."""
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHOCTL
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except Exception:  # not a terminal (or no termios): nothing is echoed to guard against
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def follow(
    events: Iterable[JobEvent], *, as_json: bool, out: TextIO | None = None
) -> JobEvent | None:
    """Render events until the terminal one, and return it (None if the stream ended early).

    Plain mode prints the job id first, then one line per event with its seq, so a watcher
    that loses its connection knows where to resume (``trainwire watch JOB --after-seq N``)."""
    out = sys.stdout if out is None else out
    last: JobEvent | None = None
    if as_json:
        for event in events:
            print(event_json(event), file=out, flush=True)
            last = event
        return last if last and last.terminal else None
    console = Console(file=out, log_path=False)
    if not console.is_terminal:
        plain = PlainFilter()
        for event in events:
            if last is None:
                print(f"job {event.job_id}", file=out, flush=True)
            line = plain.line(event)
            if line is not None:
                print(line, file=out, flush=True)
            last = event
        return last if last and last.terminal else None
    from services.follow_kinds import JobRenderer

    with quiet_control_echo(sys.stdin), JobRenderer(console) as renderer:
        for event in events:
            if last is None:
                renderer.note(f"job {event.job_id}", style="bold")
            renderer.update(event)
            last = event
    return last if last and last.terminal else None
