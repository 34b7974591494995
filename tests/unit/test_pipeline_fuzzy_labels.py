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
    class_counts,
    forward_return_labels,
    label_balance_problem,
    make_labels,
    min_class_rows,
    swing_sizes,
    threshold_for_share,
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

    assert (
        make_labels(zig, _PATH, threshold=0.05).tolist() == zigzag_labels(_PATH, 0.05, 3).tolist()
    )


def test_swing_sizes_on_the_hand_made_path() -> None:
    # zigzag, 3 bars ahead of 100: up to 103 (+3 %), down to 99 (-1 %) -> 0.03
    swings = swing_sizes(_PATH, 3, LabelMethod.ZIGZAG)
    assert swings[:5].tolist() == pytest.approx(
        [0.03, 1 - 97 / 101, 1 - 97 / 103, 1 - 97 / 99, 100 / 97 - 1]
    )
    assert np.isnan(swings[5:]).all()
    forward = swing_sizes(_PATH, 3, LabelMethod.FORWARD_RETURN)
    assert forward[:5].tolist() == pytest.approx(
        [0.01, 1 - 97 / 101, 1 - 100 / 103, 100 / 99 - 1, 100 / 97 - 1]
    )


@pytest.mark.parametrize("method", [LabelMethod.ZIGZAG, LabelMethod.FORWARD_RETURN])
def test_a_bar_is_buy_or_sell_exactly_when_its_swing_reaches_the_threshold(
    method: LabelMethod,
) -> None:
    rng = np.random.default_rng(3)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 3000)))
    swings = swing_sizes(prices, 12, method)
    for threshold in (0.002, 0.01, 0.03):
        labels = make_labels(LabelSpec(method=method, threshold=threshold, lookahead=12), prices)
        clear = np.abs(swings - threshold) > 1e-12  # away from the rounding boundary
        moved = (labels != HOLD)[:-12]
        assert (moved[clear[:-12]] == (swings[:-12] >= threshold)[clear[:-12]]).all()


def test_threshold_for_share_labels_that_share_of_bars_buy_or_sell() -> None:
    rng = np.random.default_rng(4)
    prices = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.0007, 5000)))  # an hourly FX-like walk
    swings = swing_sizes(prices, 20, LabelMethod.ZIGZAG)
    threshold = threshold_for_share(swings, 0.6)
    assert threshold is not None and threshold == float(f"{threshold:.3g}")
    labels = zigzag_labels(prices, threshold, 20)[:-20]
    counts = class_counts(labels)
    assert (counts["SELL"] + counts["BUY"]) / len(labels) == pytest.approx(0.6, abs=0.02)
    wider = threshold_for_share(swings, 0.3)  # fewer moves need a wider threshold
    assert wider is not None and wider > threshold


def test_threshold_for_share_has_no_answer_for_prices_that_never_move() -> None:
    assert threshold_for_share(swing_sizes([5.0] * 50, 5, LabelMethod.ZIGZAG)) is None
    assert threshold_for_share([]) is None


def test_a_class_needs_five_labels_or_one_percent_of_a_split() -> None:
    assert [min_class_rows(n) for n in (0, 100, 500, 501, 10_000)] == [5, 5, 5, 6, 100]
    assert class_counts([SELL, HOLD, HOLD, NO_LABEL]) == {"SELL": 1, "HOLD": 2, "BUY": 0}


def test_label_balance_problem_names_the_absent_class_and_every_count() -> None:
    usable = [SELL] * 5 + [HOLD] * 5 + [BUY] * 5
    assert label_balance_problem({"train": usable, "test": usable}) is None
    problem = label_balance_problem({"train": usable, "test": [HOLD] * 9 + [BUY] * 4})
    assert problem == (
        "SELL (nearly) absent: train 5 of 15, test 0 of 13; BUY (nearly) absent: train 5 of 15, "
        "test 4 of 13 (a class needs at least max(5, 1% of the rows) in every split); class "
        "counts: train SELL 5, HOLD 5, BUY 5; test SELL 0, HOLD 9, BUY 4"
    )
