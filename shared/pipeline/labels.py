"""Trading labels from future prices: zigzag and forward return.

Class order is fixed: ``CLASSES = ("SELL", "HOLD", "BUY")``, so a label's index is its direction
plus one (SELL=0, HOLD=1, BUY=2). Labels look ahead by definition; features never do. The last
``lookahead`` bars cannot be labelled and get ``NO_LABEL`` (-1), to be dropped.

- zigzag: from bar i, walk bars i+1..i+lookahead; BUY if the close first reaches
  ``close_i·(1+threshold)``, SELL if it first reaches ``close_i·(1-threshold)``, HOLD if neither.
- forward_return: r = close_{i+lookahead}/close_i - 1; BUY if r >= threshold, SELL if
  r <= -threshold, HOLD otherwise.

Swing sizes and thresholds. A bar's *swing* is the smallest threshold at which it would not be
HOLD: for zigzag the largest move of the window, ``max(max_j close_j/close_i - 1,
1 - min_j close_j/close_i)`` over j in i+1..i+lookahead; for forward_return ``|r|``. The bars
whose swing is >= threshold are the BUY or SELL ones (up to rounding at the boundary), so the
threshold that labels a share s of bars BUY or SELL is the (1 - s) quantile of the swings
(``threshold_for_share``; the automatic threshold aims at ``AUTO_MOVE_SHARE``, about 30 % BUY
and 30 % SELL, rounded to 3 significant digits).

Usable classes: every class must have at least ``min_class_rows(rows)`` = max(5, 1 % of the
rows) labels in every split (train, validation, test); ``label_balance_problem`` says when one
has not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from shared.spec import LabelMethod, LabelSpec

CLASSES: tuple[str, ...] = ("SELL", "HOLD", "BUY")
SELL, HOLD, BUY = 0, 1, 2
NO_LABEL = -1
_CHUNK_CELLS = 4_000_000
"""Window cells per chunk: bounds memory for long series with long lookaheads."""

AUTO_MOVE_SHARE = 0.6
"""Share of bars an automatic threshold labels BUY or SELL (the rest HOLD)."""
MIN_CLASS_ROWS = 5
MIN_CLASS_SHARE = 0.01

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class LabelReport:
    """How a run's labels were made: what the labels step decided, for metadata and messages."""

    method: str
    lookahead: int
    threshold: float
    """The threshold the labels were made with."""
    requested_threshold: float
    """``LabelSpec.threshold`` as the request gave it."""
    calibrated: bool
    """True when ``threshold`` was calibrated from the training rows (``auto_threshold``)."""
    suggested_threshold: float | None
    """The threshold that labels about ``target_share`` of the training rows BUY or SELL; None
    when the prices never move."""
    target_share: float = AUTO_MOVE_SHARE
    training_rows: int = 0
    """The training rows the suggestion (and a calibration) was computed from."""


def zigzag_labels(close: npt.ArrayLike, threshold: float, lookahead: int) -> IntArray:
    """SELL/HOLD/BUY per bar by which ±threshold move comes first within ``lookahead`` bars."""
    prices = np.asarray(close, dtype=np.float64)
    n = len(prices)
    labels = np.full(n, NO_LABEL, dtype=np.int64)
    labelled = n - lookahead
    if labelled <= 0:
        return labels
    rows_per_chunk = max(1, _CHUNK_CELLS // lookahead)
    future = sliding_window_view(prices[1:], lookahead)  # row i: closes i+1 .. i+lookahead
    for start in range(0, labelled, rows_per_chunk):
        stop = min(labelled, start + rows_per_chunk)
        window = future[start:stop]
        base = prices[start:stop, None]
        up = window >= base * (1.0 + threshold)
        down = window <= base * (1.0 - threshold)
        never = lookahead  # sentinel: the move never happens in the window
        first_up = np.where(up.any(axis=1), up.argmax(axis=1), never)
        first_down = np.where(down.any(axis=1), down.argmax(axis=1), never)
        chunk = np.full(stop - start, HOLD, dtype=np.int64)
        chunk[first_up < first_down] = BUY
        chunk[first_down < first_up] = SELL
        labels[start:stop] = chunk
    return labels


def forward_return_labels(close: npt.ArrayLike, threshold: float, lookahead: int) -> IntArray:
    """SELL/HOLD/BUY per bar by the return over exactly ``lookahead`` bars."""
    prices = np.asarray(close, dtype=np.float64)
    labels = np.full(len(prices), NO_LABEL, dtype=np.int64)
    if len(prices) <= lookahead:
        return labels
    returns = prices[lookahead:] / prices[:-lookahead] - 1.0
    body = np.full(len(returns), HOLD, dtype=np.int64)
    body[returns >= threshold] = BUY
    body[returns <= -threshold] = SELL
    labels[: len(body)] = body
    return labels


def make_labels(
    spec: LabelSpec, close: npt.ArrayLike, *, threshold: float | None = None
) -> IntArray:
    """Labels by ``spec.method`` at ``threshold`` (default ``spec.threshold``); the last
    ``spec.lookahead`` entries are ``NO_LABEL``."""
    level = spec.threshold if threshold is None else threshold
    if spec.method is LabelMethod.ZIGZAG:
        return zigzag_labels(close, level, spec.lookahead)
    if spec.method is LabelMethod.FORWARD_RETURN:
        return forward_return_labels(close, level, spec.lookahead)
    raise ValueError(f"unknown label method {spec.method!r}")


def swing_sizes(close: npt.ArrayLike, lookahead: int, method: LabelMethod) -> FloatArray:
    """Per bar, the smallest threshold at which ``method`` would not label it HOLD; NaN for the
    last ``lookahead`` bars (they get no label)."""
    prices = np.asarray(close, dtype=np.float64)
    n = len(prices)
    out = np.full(n, np.nan)
    labelled = n - lookahead
    if labelled <= 0:
        return out
    if method is LabelMethod.FORWARD_RETURN:
        out[:labelled] = np.abs(prices[lookahead:] / prices[:labelled] - 1.0)
        return out
    if method is not LabelMethod.ZIGZAG:
        raise ValueError(f"unknown label method {method!r}")
    rows_per_chunk = max(1, _CHUNK_CELLS // lookahead)
    future = sliding_window_view(prices[1:], lookahead)
    for start in range(0, labelled, rows_per_chunk):
        stop = min(labelled, start + rows_per_chunk)
        window = future[start:stop]
        base = prices[start:stop]
        up = window.max(axis=1) / base - 1.0
        down = 1.0 - window.min(axis=1) / base
        out[start:stop] = np.maximum(up, down)
    return out


def threshold_for_share(swings: npt.ArrayLike, share: float = AUTO_MOVE_SHARE) -> float | None:
    """The threshold (3 significant digits) that labels about ``share`` of these bars BUY or
    SELL: the (1 - share) quantile of their swing sizes. None when no bar moves at all."""
    values = np.asarray(swings, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or float(values.max()) <= 0.0:
        return None
    quantile = float(np.quantile(values, 1.0 - share))
    if quantile <= 0.0:
        quantile = float(values[values > 0.0].min())
    rounded = float(f"{quantile:.3g}")
    return min(max(rounded, 1e-6), 0.5)


def class_counts(labels: npt.ArrayLike) -> dict[str, int]:
    """Labels per class, in ``CLASSES`` order (``NO_LABEL`` entries are not counted)."""
    values = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(values[values >= 0], minlength=len(CLASSES))
    return {name: int(counts[i]) for i, name in enumerate(CLASSES)}


def min_class_rows(rows: int) -> int:
    """The fewest labels a class needs in a split of ``rows`` rows: max(5, 1 % of them)."""
    return max(MIN_CLASS_ROWS, math.ceil(MIN_CLASS_SHARE * rows))


def label_balance_problem(splits: Mapping[str, npt.ArrayLike]) -> str | None:
    """Why these splits' labels cannot train an honest classifier, or None when they can.

    ``splits`` maps a split's name (``train``, ``validation``, ``test``) to its labels. The
    answer names the (nearly) absent classes with their counts, then every split's counts:
    ``HOLD (nearly) absent: train 0 of 1322, ...; class counts: train SELL 557, HOLD 0, ...``.
    """
    counts = {name: class_counts(labels) for name, labels in splits.items()}
    rows = {name: sum(per_class.values()) for name, per_class in counts.items()}
    short = [
        c for c in CLASSES if any(counts[name][c] < min_class_rows(rows[name]) for name in counts)
    ]
    if not short:
        return None
    absent = "; ".join(
        f"{c} (nearly) absent: "
        + ", ".join(f"{name} {counts[name][c]} of {rows[name]}" for name in counts)
        for c in short
    )
    listed = "; ".join(
        f"{name} " + ", ".join(f"{c} {n}" for c, n in per_class.items())
        for name, per_class in counts.items()
    )
    return (
        f"{absent} (a class needs at least max({MIN_CLASS_ROWS}, {MIN_CLASS_SHARE:.0%} of the "
        f"rows) in every split); class counts: {listed}"
    )
