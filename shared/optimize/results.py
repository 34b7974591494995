"""What an optimization gives back: trials, walk-forward windows, the outcome; its reporter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.cancellation import CancelledError
from shared.optimize.settings import Objective

TrialState = Literal["complete", "pruned", "failed", "infeasible"]


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial.

    ``complete``: backtested and scored. ``failed``: backtested but the objective is not a
    number (no trades, so no Sharpe Ratio, for instance); its score is the worst possible
    (``-inf`` maximizing, ``+inf`` minimizing) and it counts against the budget.
    ``infeasible``: broke a constraint, never backtested, score NaN, not counted.
    ``pruned`` is kept for pruners stopping a trial early.
    """

    number: int
    """Optuna's trial number within its study (infeasible points included)."""
    params: dict[str, object]
    score: float
    stats: dict[str, float]
    state: TrialState
    duration_s: float


@dataclass(frozen=True)
class WindowResult:
    """One walk-forward window: the best parameters on its train span, scored on its test span."""

    index: int
    train_start: float
    """Unix seconds of the first train bar; ``train_end`` of the last one (both included)."""
    train_end: float
    test_start: float
    test_end: float
    best_params: dict[str, object]
    in_sample: dict[str, float]
    """The stats of ``best_params`` on the train span; {} when no trial there was scored."""
    out_of_sample: dict[str, float]
    """The stats of ``best_params`` on the test span; {} when there were no best parameters."""
    overfit: bool


@dataclass(frozen=True)
class OptimizationOutcome:
    trials: tuple[TrialRecord, ...]
    """Every trial of the optimization over all the bars, in order (windows' trials are not
    kept; their results are in ``windows``)."""
    best_params: dict[str, object]
    """The best complete trial's parameters; {} when no trial completed."""
    best_score: float
    """NaN when no trial completed."""
    in_sample: dict[str, float]
    """The best trial's stats over all the bars."""
    windows: tuple[WindowResult, ...]
    out_of_sample: dict[str, float]
    """Each stat's mean over the windows' test spans (windows where it is a number); {}
    without walk-forward."""
    overfit: bool
    """Walk-forward's verdict on the windows taken together (``walk_forward.is_overfit`` on
    the mean in-sample and out-of-sample scores); False without walk-forward."""
    objective: Objective
    sampler: str
    seed: int | None


class OptimizationCancelled(CancelledError):
    """The optimization was cancelled; ``partial`` holds the trials finished before."""

    def __init__(self, reason: str, partial: OptimizationOutcome) -> None:
        super().__init__(reason)
        self.partial = partial


class OptimizationReporter(Protocol):
    """Progress of an optimization, called on the thread running it."""

    def trial_finished(
        self,
        *,
        iteration: int,
        total: int | None,
        score: float,
        best_score: float,
        best_params: Mapping[str, object],
        params: Mapping[str, object],
        window: int | None,
    ) -> None:
        """A scored trial finished: ``iteration`` of ``total`` (None: a time budget only) in
        the main study (``window`` None) or in walk-forward window ``window``. ``best_score``
        is NaN until a trial completes. Infeasible points are not reported."""

    def candles(self, stage: str, done: int, total: int) -> None:
        """Candle progress inside the running trial (sequential trials only)."""

    def phase(self, name: Literal["optimize", "validate"], fraction: float) -> None:
        """Progress within a phase, 0..1, never decreasing."""
