"""Follow a job's event stream in the terminal: live bars on a TTY, plain lines otherwise,
or one JSON object per event (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column

from shared.jobs import EventKind, JobEvent, JobState


def event_json(event: JobEvent) -> str:
    def convert(value: Any) -> Any:
        if isinstance(value, JobState | EventKind):
            return value.value
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


def _metrics_text(metrics: dict[str, float] | Any) -> str:
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
    parts = [f"{k}={metrics[k]:.4g}" for k in keys if k in metrics]
    return " ".join(parts)


class LiveRenderer:
    """Overall, step, epoch and batch bars plus the current message and metrics."""

    def __init__(self, console: Console) -> None:
        self.console = console
        # Columns share the terminal's width: the bar and the info text shrink on a narrow
        # terminal instead of collapsing (80 columns is the common worst case).
        self.progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(width=26, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=2, min_width=10)),
            TextColumn("{task.percentage:>5.1f}%", table_column=Column(width=6)),
            TimeRemainingColumn(),
            TextColumn(
                "{task.fields[info]}",
                table_column=Column(ratio=3, no_wrap=True, overflow="ellipsis"),
            ),
            console=console,
            transient=False,
            refresh_per_second=8,
            expand=True,
        )
        self.overall: TaskID = self.progress.add_task("Overall", total=100, info="")
        self.step: TaskID = self.progress.add_task("Step", total=100, info="")
        self.epoch: TaskID | None = None
        self.batch: TaskID | None = None
        self._last_step = 0

    def __enter__(self) -> LiveRenderer:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, event: JobEvent) -> None:
        p = self.progress
        p.update(self.overall, completed=event.percentage, info=event.message[:70])
        if event.step_index:
            if event.step_index != self._last_step:
                self._last_step = event.step_index
                self.console.log(f"Step {event.step_index}/{event.step_total}: {event.step_name}")
            p.update(
                self.step,
                description=f"Step {event.step_index}/{event.step_total} {event.step_name}",
                completed=event.step_percentage,
            )
        if event.total_epochs:
            if self.epoch is None:
                self.epoch = p.add_task("Epoch", total=event.total_epochs, info="")
            p.update(
                self.epoch,
                completed=event.epoch,
                total=event.total_epochs,
                description=f"Epoch {event.epoch}/{event.total_epochs}",
                info=_metrics_text(event.metrics) if event.kind is EventKind.EPOCH else None,
            )
        if event.total_batches:
            if self.batch is None:
                self.batch = p.add_task("Batch", total=event.total_batches, info="")
            p.update(
                self.batch,
                completed=event.batch,
                total=event.total_batches,
                description=f"Batch {event.batch}/{event.total_batches}",
            )
        if event.kind is EventKind.EPOCH or event.kind in (EventKind.LIFECYCLE, EventKind.UPLOAD):
            self.console.log(event.message)


def follow(
    events: Iterable[JobEvent], *, as_json: bool, out: TextIO = sys.stdout
) -> JobEvent | None:
    """Render events until the terminal one, and return it (None if the stream ended early)."""
    last: JobEvent | None = None
    if as_json:
        for event in events:
            print(event_json(event), file=out, flush=True)
            last = event
        return last if last and last.terminal else None
    console = Console(file=out, log_path=False)
    if not console.is_terminal:
        for event in events:
            if event.kind is not EventKind.BATCH or event.batch == event.total_batches:
                print(f"[{event.percentage:5.1f}%] {event.message}", file=out, flush=True)
            last = event
        return last if last and last.terminal else None
    with LiveRenderer(console) as renderer:
        for event in events:
            renderer.update(event)
            last = event
    return last if last and last.terminal else None
