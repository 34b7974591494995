"""Trading labels from future prices: zigzag and forward return.

Class order is fixed: ``CLASSES = ("SELL", "HOLD", "BUY")``, so a label's index is its direction
plus one (SELL=0, HOLD=1, BUY=2). Labels look ahead by definition; features never do. The last
``lookahead`` bars cannot be labelled and get ``NO_LABEL`` (-1), to be dropped.

- zigzag: from bar i, walk bars i+1..i+lookahead; BUY if the close first reaches
  ``close_i·(1+threshold)``, SELL if it first reaches ``close_i·(1-threshold)``, HOLD if neither.
- forward_return: r = close_{i+lookahead}/close_i - 1; BUY if r >= threshold, SELL if
  r <= -threshold, HOLD otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from shared.spec import LabelMethod, LabelSpec

CLASSES: tuple[str, ...] = ("SELL", "HOLD", "BUY")
SELL, HOLD, BUY = 0, 1, 2
NO_LABEL = -1
_CHUNK_CELLS = 4_000_000
"""Window cells per chunk: bounds memory for long series with long lookaheads."""

IntArray = npt.NDArray[np.int64]


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


def make_labels(spec: LabelSpec, close: npt.ArrayLike) -> IntArray:
    """Labels by ``spec.method``; the last ``spec.lookahead`` entries are ``NO_LABEL``."""
    if spec.method is LabelMethod.ZIGZAG:
        return zigzag_labels(close, spec.threshold, spec.lookahead)
    if spec.method is LabelMethod.FORWARD_RETURN:
        return forward_return_labels(close, spec.threshold, spec.lookahead)
    raise ValueError(f"unknown label method {spec.method!r}")
