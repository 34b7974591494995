"""Walk-forward windows, the overfitting rule and the out-of-sample aggregate.

Overfitting: compare the window's out-of-sample score with its in-sample score as a
"goodness" (the score when maximizing, minus the score when minimizing). The window is
overfit when out-of-sample falls short of in-sample by more than half of the in-sample
magnitude: ``g_oos < g_is - 0.5 * |g_is|``. For a positive in-sample score that is
``OOS < 0.5 x IS``, which includes every sign flip to a loss; for an in-sample score of 0,
any out-of-sample loss. A window whose scores are not both numbers (no trades on one of the
spans) is not flagged: there is nothing to compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.errors import InvalidArgumentError
from shared.optimize.evaluate import Span
from shared.optimize.settings import Objective, WalkForward

OVERFIT_SHORTFALL = 0.5
"""The fraction of the in-sample magnitude out-of-sample may fall short by before the flag."""


@dataclass(frozen=True)
class Window:
    index: int
    train: Span
    test: Span


def check(walk: WalkForward) -> None:
    """Raise ``InvalidArgumentError`` on a window size that is not a count of bars."""
    for name in ("train_bars", "test_bars"):
        value = getattr(walk, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(
                f"walk_forward.{name} is a whole number of bars >= 1, not {value!r}",
                field=f"walk_forward.{name}",
            )
    if isinstance(walk.gap_bars, bool) or not isinstance(walk.gap_bars, int) or walk.gap_bars < 0:
        raise InvalidArgumentError(
            f"walk_forward.gap_bars is a whole number of bars >= 0, not {walk.gap_bars!r}",
            field="walk_forward.gap_bars",
        )
    per_window = walk.trials_per_window
    if per_window is not None and (
        isinstance(per_window, bool) or not isinstance(per_window, int) or per_window < 1
    ):
        raise InvalidArgumentError(
            f"walk_forward.trials_per_window is a number of trials >= 1 (or unset for the "
            f"settings' trials), not {per_window!r}",
            field="walk_forward.trials_per_window",
        )


def windows(walk: WalkForward, bars: int) -> tuple[Window, ...]:
    """The windows over ``bars`` rows; raises ``InvalidArgumentError`` when none fits."""
    check(walk)
    out: list[Window] = []
    k = 0
    while True:
        offset = k * walk.test_bars
        train_start = 0 if walk.anchored else offset
        train_stop = offset + walk.train_bars
        test_start = train_stop + walk.gap_bars
        test_stop = test_start + walk.test_bars
        if test_stop > bars:
            break
        out.append(Window(k, (train_start, train_stop), (test_start, test_stop)))
        k += 1
    if not out:
        need = walk.train_bars + walk.gap_bars + walk.test_bars
        raise InvalidArgumentError(
            f"walk-forward needs train_bars + gap_bars + test_bars = {need} bars for one window, "
            f"but the data has {bars}; shorten the windows or load more bars",
            field="walk_forward.train_bars",
        )
    return tuple(out)


def _goodness(value: float, objective: Objective) -> float:
    return value if objective.direction == "maximize" else -value


def is_overfit(in_sample: float, out_of_sample: float, objective: Objective) -> bool:
    """The module's rule on two objective scores."""
    if not (math.isfinite(in_sample) and math.isfinite(out_of_sample)):
        return False
    g_is, g_oos = _goodness(in_sample, objective), _goodness(out_of_sample, objective)
    return g_oos < g_is - OVERFIT_SHORTFALL * abs(g_is)


def mean_stats(stats: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each stat's mean over the dicts where it is a finite number (NaN where it never is)."""
    names: list[str] = []
    for one in stats:
        names.extend(name for name in one if name not in names)
    out: dict[str, float] = {}
    for name in names:
        finite = [v for one in stats if math.isfinite(v := one.get(name, math.nan))]
        out[name] = math.fsum(finite) / len(finite) if finite else math.nan
    return out
