"""The live display of backtests and optimizations, on top of ``services.follow``'s bars.

Below ``Overall`` and ``Step i/n``:

- ``Steps``: a breadcrumb of the job's steps, ``✓ Loading market data › Optimizing › 2 more``;
- ``Trials``: finished trials of the budget, the best and the current score (an optimization;
  ``W2/6`` in front while a walk-forward window is searched);
- the best parameters so far, beside the current trial's, as a small table;
- ``Candles``: the candles the running backtest has processed, and its stage
  (``signals`` then ``trades``).

A trial that improves on the best is noted above the bars. Training jobs look exactly as before:
these bars appear only when events carry candles or trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from services.follow import LiveRenderer
from shared.jobs import JobEvent, JobState
from shared.results import OptimizerProgress


class SplitProgress(Progress):
    """Bars in three groups: the job's (above), the trials (``middle``) and the candles
    (``below``), with the step breadcrumb before the trials and a table after them."""

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        self.middle: set[TaskID] = set()
        self.below: set[TaskID] = set()
        self.crumbs: Text | None = None
        self.table: Table | None = None
        super().__init__(*columns, **kwargs)  # draws once: the fields above must exist

    def get_renderables(self) -> Iterable[RenderableType]:
        above = [t for t in self.tasks if t.id not in self.middle | self.below]
        yield self.make_tasks_table(above)
        if self.crumbs is not None:
            yield self.crumbs
        for group, after in ((self.middle, self.table), (self.below, None)):
            tasks = [t for t in self.tasks if t.id in group]
            if tasks:
                yield self.make_tasks_table(tasks)
            if after is not None:
                yield after


def score(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "n/a"


def breadcrumb(names: dict[int, str], current: int, total: int) -> str:
    """``✓ Loading market data › Optimizing › 2 more``: done steps ticked, later ones counted."""
    parts = [f"✓ {names[i]}" for i in range(1, current) if i in names]
    parts.append(names.get(current, f"step {current}"))
    if total > current:
        parts.append(f"{total - current} more")
    return " › ".join(parts)


def params_table(o: OptimizerProgress) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2), show_edge=False)
    table.add_column("best params", style="bold", no_wrap=True)
    table.add_column(f"best {score(o.best_score)}", no_wrap=True)
    table.add_column(f"trial {o.iteration}: {score(o.current_score)}", no_wrap=True)
    for name in sorted(set(o.best_params) | set(o.current_params)):
        table.add_row(f"  {name}", o.best_params.get(name, "-"), o.current_params.get(name, "-"))
    return table


class JobRenderer(LiveRenderer):
    """``LiveRenderer`` plus the trial bar, the best-parameters table and the candle bar."""

    progress_class = SplitProgress

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trials: TaskID | None = None
        self.candles: TaskID | None = None
        self._steps: dict[int, str] = {}
        self._current = (0, 0)
        self._best = math.nan
        self._window = 0

    @property
    def split(self) -> SplitProgress:
        assert isinstance(self.progress, SplitProgress)
        return self.progress

    def update(self, event: JobEvent) -> None:
        super().update(event)
        if event.step_index:
            self._steps[event.step_index] = event.step_name
            self._current = (event.step_index, event.step_total)
        if event.optimizer is not None:
            self._trial(event.optimizer)
        if event.items is not None and event.items.name == "candles":
            self._candles(event)
        if self.trials is not None or self.candles is not None:
            crumbs = breadcrumb(self._steps, *self._current) if self._current[0] else ""
            self.split.crumbs = Text(f"Steps      {crumbs}", no_wrap=True, overflow="ellipsis")
        if event.terminal:
            self._finished(event)

    def _finished(self, event: JobEvent) -> None:
        """The job is over: the candle bar full if it succeeded, and the trial bar and table
        show the search's best (not the last walk-forward window's)."""
        if self.candles is not None and event.state is JobState.SUCCEEDED:
            total = int(self._task_of(self.candles).total or 1)
            self.progress.update(
                self.candles, completed=total, amount="100%", info=f"{total:,}/{total:,} · done"
            )
        result = event.optimize_result
        if result is None or self.trials is None:
            return
        best = OptimizerProgress(
            iteration=len(result.trials),
            total_iterations=len(result.trials),
            best_score=result.best_score,
            current_score=result.best_score,
            best_params=result.best_params,
            current_params=result.best_params,
            objective=result.objective,
        )
        self.split.table = params_table(best)
        self.progress.update(
            self.trials,
            info=f"{len(result.trials)} trials · best {result.objective} "
            f"{score(result.best_score)} (whole range)",
        )

    def _trial(self, o: OptimizerProgress) -> None:
        if self.trials is None:
            self.trials = self._task("Trials")
            self.split.middle.add(self.trials)
        if o.window != self._window:
            self._window, self._best = o.window, math.nan
        total = o.total_iterations or o.iteration
        window = f"W{o.window}/{o.total_windows} · " if o.window else ""
        self.progress.update(
            self.trials,
            completed=o.iteration,
            total=max(total, 1),
            amount=f"{o.iteration}/{o.total_iterations or '?'}",
            info=f"{window}best {o.objective} {score(o.best_score)} · current "
            f"{score(o.current_score)}",
        )
        self.split.table = params_table(o)
        improved = math.isfinite(o.best_score) and (
            not math.isfinite(self._best) or o.best_score != self._best
        )
        if improved:
            self._best = o.best_score
            params = ", ".join(f"{k}={v}" for k, v in o.best_params.items())
            where = f"window {o.window}/{o.total_windows} " if o.window else ""
            self.note(
                f"{where}trial {o.iteration}: new best {o.objective} "
                f"{score(o.best_score)} ({params})"
            )

    def _candles(self, event: JobEvent) -> None:
        items = event.items
        assert items is not None
        if self.candles is None:
            self.candles = self._task("Candles")
            self.split.below.add(self.candles)
        total = max(items.total, 1)
        self.progress.update(
            self.candles,
            completed=items.current,
            total=total,
            amount=f"{100 * items.current / total:.0f}%",
            info=f"{items.current:,}/{items.total:,} · {event.stage}"
            if event.stage
            else f"{items.current:,}/{items.total:,}",
        )
