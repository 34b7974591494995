"""Fuzzy membership shapes at their key points, and labels on hand-made price paths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.pipeline.fuzzy import fuzzify, gaussian, trapezoidal, triangular
from shared.pipeline.labels import (
    BUY,
    CLASSES,
    HOLD,
    NO_LABEL,
    SELL,
    forward_return_labels,
    make_labels,
    zigzag_labels,
)
from shared.spec import FuzzySetSpec, LabelMethod, LabelSpec


def test_triangular_key_points() -> None:
    x = [-5.0, 0.0, 10.0, 20.0, 27.5, 35.0, 40.0]
    assert triangular(x, 0, 20, 35).tolist() == pytest.approx([0, 0, 0.5, 1, 0.5, 0, 0])


def test_trapezoidal_key_points_and_shoulders() -> None:
    x = [-0.5, 0.0, 0.25, 1.0, 2.0, 2.5, 3.0, 4.0]
    assert trapezoidal(x, 0, 1, 2, 3).tolist() == pytest.approx([0, 0, 0.25, 1, 1, 0.5, 0, 0])
    left = trapezoidal([-5.0, -1.0, -0.5, -0.015, 0.0, 0.01], -1, -1, -0.03, 0)
    assert left.tolist() == pytest.approx([1, 1, 1, 0.5, 0, 0])
    right = trapezoidal([-0.01, 0.0, 0.015, 0.5, 5.0], 0, 0.03, 1, 1)
    assert right.tolist() == pytest.approx([0, 0, 0.5, 1, 1])


def test_degenerate_triangles() -> None:
    assert triangular([-1.0, 0.0, 5.0, 10.0], 0, 0, 10).tolist() == pytest.approx([1, 1, 0.5, 0])
    assert triangular([0.0, 5.0, 10.0, 11.0], 0, 10, 10).tolist() == pytest.approx([0, 0.5, 1, 1])
    assert triangular([4.0, 5.0, 6.0], 5, 5, 5).tolist() == [0, 1, 0]


def test_gaussian_key_points() -> None:
    out = gaussian([1.0, 2.0, 0.0, 3.0], 1.0, 1.0)
    assert out.tolist() == pytest.approx([1, math.exp(-0.5), math.exp(-0.5), math.exp(-2)])
    with pytest.raises(ValueError):
        gaussian([0.0], 0.0, 0.0)


def test_fuzzify_keeps_nan_and_stays_in_unit_interval() -> None:
    spec = FuzzySetSpec(input="rsi_14", name="neutral", shape="triangular", params=(30, 50, 70))
    values = np.array([np.nan, 10.0, 40.0, 50.0, 99.0])
    out = fuzzify(spec, values)
    assert np.isnan(out[0])
    assert out[1:].tolist() == pytest.approx([0, 0.5, 1, 0])
    wide = fuzzify(
        FuzzySetSpec(input="x", name="g", shape="gaussian", params=(0, 2)),
        np.linspace(-100, 100, 1001),
    )
    assert ((wide >= 0) & (wide <= 1)).all()


# Hand-made path, threshold 2 %, lookahead 3:
#   i=0 100 -> [101, 103, 99]: 103 >= 102 first                  -> BUY
#   i=1 101 -> [103, 99, 97]: 103 < 103.02; 97 <= 98.98          -> SELL
#   i=2 103 -> [99, 97, 100]: 99 <= 100.94 first                 -> SELL
#   i=3  99 -> [97, 100, 100]: 97 <= 97.02 first                 -> SELL
#   i=4  97 -> [100, 100, 100]: 100 >= 98.94 first               -> BUY
#   i=5..7: no full window                                        -> NO_LABEL
_PATH = [100.0, 101.0, 103.0, 99.0, 97.0, 100.0, 100.0, 100.0]


def test_class_order() -> None:
    assert CLASSES == ("SELL", "HOLD", "BUY")
    assert (SELL, HOLD, BUY) == (0, 1, 2)


def test_zigzag_on_hand_made_path() -> None:
    labels = zigzag_labels(_PATH, 0.02, 3)
    assert labels.tolist() == [BUY, SELL, SELL, SELL, BUY, NO_LABEL, NO_LABEL, NO_LABEL]


def test_zigzag_first_touch_wins_and_flat_is_hold() -> None:
    # down 2.5 % at step 1, up 4 % at step 2: the down move came first
    assert zigzag_labels([100.0, 97.5, 104.0, 104.0], 0.02, 2).tolist()[:1] == [SELL]
    assert zigzag_labels([100.0, 101.0, 102.5, 90.0], 0.02, 2).tolist()[:1] == [BUY]
    assert zigzag_labels([100.0] * 10, 0.02, 4).tolist() == [HOLD] * 6 + [NO_LABEL] * 4
    assert zigzag_labels([100.0, 101.0], 0.02, 5).tolist() == [NO_LABEL] * 2


def test_zigzag_chunking_matches_one_pass() -> None:
    import shared.pipeline.labels as labels_module

    rng = np.random.default_rng(0)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    whole = zigzag_labels(prices, 0.02, 10)
    old = labels_module._CHUNK_CELLS
    labels_module._CHUNK_CELLS = 25  # 2 rows per chunk
    try:
        assert zigzag_labels(prices, 0.02, 10).tolist() == whole.tolist()
    finally:
        labels_module._CHUNK_CELLS = old


def test_forward_return_on_hand_made_path() -> None:
    # returns over 3 bars: -1 %, -3.96 %, -2.91 %, +1.01 %, +3.09 %
    labels = forward_return_labels(_PATH, 0.02, 3)
    assert labels.tolist() == [HOLD, SELL, SELL, HOLD, BUY, NO_LABEL, NO_LABEL, NO_LABEL]


def test_make_labels_dispatches() -> None:
    spec = LabelSpec(method=LabelMethod.FORWARD_RETURN, threshold=0.02, lookahead=3)
    assert make_labels(spec, _PATH).tolist() == forward_return_labels(_PATH, 0.02, 3).tolist()
    zig = LabelSpec(method=LabelMethod.ZIGZAG, threshold=0.02, lookahead=3)
    assert make_labels(zig, _PATH).tolist() == zigzag_labels(_PATH, 0.02, 3).tolist()
