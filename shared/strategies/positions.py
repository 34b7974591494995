"""Turning entry and exit conditions into a position per bar (a small compiled state machine).

``hold_positions(enter_long, enter_short, exit_long, exit_short, max_hold)``: at each bar, an
entry condition sets the position (+1 or -1; both at once leave it as it was); otherwise the
exit condition of the side held makes it flat; a position held ``max_hold`` bars since its last
entry goes flat too (0: no limit). Conditions are boolean arrays, one per bar, known at that
bar's close.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.strategies.compiled import compiled

Bools = npt.NDArray[np.bool_]
Signals = npt.NDArray[np.int8]


@compiled
def _hold(
    enter_long: Bools,
    enter_short: Bools,
    exit_long: Bools,
    exit_short: Bools,
    max_hold: int,
    out: Signals,
) -> None:
    position = 0
    held = 0
    for i in range(len(out)):
        long_in, short_in = enter_long[i], enter_short[i]
        if long_in and not short_in:
            position, held = 1, 0
        elif short_in and not long_in:
            position, held = -1, 0
        elif (position == 1 and exit_long[i]) or (position == -1 and exit_short[i]):
            position = 0
        elif position != 0:
            held += 1
            if max_hold > 0 and held >= max_hold:
                position = 0
        out[i] = position


def hold_positions(
    enter_long: Bools,
    enter_short: Bools,
    exit_long: Bools,
    exit_short: Bools,
    max_hold: int = 0,
) -> Signals:
    """The position after each bar (module docstring)."""
    out = np.zeros(len(enter_long), dtype=np.int8)
    _hold(
        np.ascontiguousarray(enter_long, dtype=np.bool_),
        np.ascontiguousarray(enter_short, dtype=np.bool_),
        np.ascontiguousarray(exit_long, dtype=np.bool_),
        np.ascontiguousarray(exit_short, dtype=np.bool_),
        int(max_hold),
        out,
    )
    return out


def warm_up() -> None:
    """Compile the state machine now (or load it from numba's on-disk cache)."""
    flags = np.array([True, False, False], dtype=np.bool_)
    hold_positions(flags, flags[::-1].copy(), flags, flags, 1)
