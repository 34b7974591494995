"""The labels step: the training rows known before labelling, and a threshold calibrated on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from shared.cancellation import CancellationToken
from shared.pipeline.features import combine_symbols, split_rows, usable_rows
from shared.pipeline.job import JobContext, TrainingJob
from shared.pipeline.labelling import label_symbols, training_positions
from shared.pipeline.labels import (
    class_counts,
    swing_sizes,
    threshold_for_share,
    zigzag_labels,
)
from shared.pipeline.market import DataError
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ProgressUpdate
from shared.spec import (
    LabelMethod,
    LabelSpec,
    TrainingRequest,
    TrainingSpec,
    default_strategy,
)

_LOOKAHEAD = 10
_WARMUP = {"A": 30, "B": 12}
_BARS = {"A": 900, "B": 500}


def _job(
    *, auto: bool = False, method: LabelMethod = LabelMethod.ZIGZAG
) -> tuple[TrainingJob, list[ProgressUpdate]]:
    strategy = dataclasses.replace(
        default_strategy(),
        labels=LabelSpec(method=method, threshold=0.02, lookahead=_LOOKAHEAD, auto_threshold=auto),
        training=TrainingSpec(validation_split=0.2, test_split=0.15),
    )
    request = TrainingRequest(symbols=("A", "B"), timeframes=("1h",), strategy=strategy)
    updates: list[ProgressUpdate] = []
    return JobContext(request, ProgressTracker(updates.append), CancellationToken()), updates


def _inputs(
    seed: int = 0,
) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    bars: dict[tuple[str, str], pd.DataFrame] = {}
    features: dict[str, pd.DataFrame] = {}
    for symbol, n in _BARS.items():
        index = pd.date_range("2021-01-01", periods=n, freq="h", tz="UTC")
        close = 1.2 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        bars[(symbol, "1h")] = pd.DataFrame({"close": close}, index=index)
        column = rng.normal(size=n)
        column[: _WARMUP[symbol]] = np.nan
        features[symbol] = pd.DataFrame({"f": column}, index=index)
    return bars, features


def test_training_positions_are_the_rows_the_split_trains_on() -> None:
    job, _ = _job()
    bars, features = _inputs()
    labelled = label_symbols(job, bars, features)
    dataset = combine_symbols(labelled.frames)
    train, _, _ = split_rows(dataset, 0.2, 0.15, purge=_LOOKAHEAD)

    positions = training_positions(job, features)
    for frame, segment in zip(labelled.frames, dataset.segments, strict=True):
        usable = np.flatnonzero(usable_rows(frame))
        mine = train[(train >= segment.start) & (train < segment.stop)] - segment.start
        assert positions[frame.symbol].tolist() == usable[mine].tolist()
        assert positions[frame.symbol][0] == _WARMUP[frame.symbol]


@pytest.mark.parametrize("method", [LabelMethod.ZIGZAG, LabelMethod.FORWARD_RETURN])
def test_auto_threshold_is_calibrated_on_the_training_rows(method: LabelMethod) -> None:
    job, updates = _job(auto=True, method=method)
    bars, features = _inputs()
    labelled = label_symbols(job, bars, features)
    report = labelled.report

    positions = training_positions(job, features)
    swings = np.concatenate(
        [
            swing_sizes(bars[(s, "1h")]["close"], _LOOKAHEAD, method)[positions[s]]
            for s in ("A", "B")
        ]
    )
    assert report.calibrated and report.threshold == threshold_for_share(swings)
    assert report.threshold != 0.02 and report.requested_threshold == 0.02
    assert report.training_rows == len(swings)
    counts = class_counts(np.concatenate([f.labels[positions[f.symbol]] for f in labelled.frames]))
    moved = (counts["SELL"] + counts["BUY"]) / sum(counts.values())
    assert moved == pytest.approx(0.6, abs=0.03)  # about 30 % BUY and 30 % SELL

    messages = [u.message for u in updates if u.step_index == 5]
    expected = f"Calibrated {method.value} threshold {report.threshold:g} from {len(swings):,} "
    assert any(m.startswith(expected) for m in messages), messages


def test_calibration_never_looks_at_validation_or_test_prices() -> None:
    job, _ = _job(auto=True)
    bars, features = _inputs()
    first = label_symbols(job, bars, features).report.threshold

    positions = training_positions(job, features)
    changed = {key: frame.copy() for key, frame in bars.items()}
    for (symbol, _), frame in changed.items():
        last_seen = positions[symbol][-1] + _LOOKAHEAD  # the farthest close a training row sees
        wild = frame["close"].to_numpy(copy=True)
        wild[last_seen + 1 :] *= np.where(np.arange(len(wild) - last_seen - 1) % 2, 1.5, 0.5)
        frame["close"] = wild
    job_again, _ = _job(auto=True)
    assert label_symbols(job_again, changed, features).report.threshold == first

    seen = {key: frame.copy() for key, frame in bars.items()}  # the control: training prices
    jumpy = seen[("A", "1h")]["close"].to_numpy(copy=True)
    jumpy[: positions["A"][-1] + _LOOKAHEAD + 1 : 2] *= 1.01
    seen[("A", "1h")]["close"] = jumpy
    job_third, _ = _job(auto=True)
    assert label_symbols(job_third, seen, features).report.threshold != first


def test_a_fixed_threshold_is_used_as_given_and_a_suggestion_is_made() -> None:
    job, _ = _job()
    bars, features = _inputs()
    labelled = label_symbols(job, bars, features)
    report = labelled.report
    assert not report.calibrated and report.threshold == 0.02
    assert report.suggested_threshold is not None and report.suggested_threshold < 0.02
    close = bars[("A", "1h")]["close"].to_numpy()
    assert labelled.frames[0].labels.tolist() == zigzag_labels(close, 0.02, _LOOKAHEAD).tolist()


def test_auto_threshold_on_prices_that_never_move_is_a_data_error() -> None:
    job, _ = _job(auto=True)
    bars, features = _inputs()
    flat = {key: frame.assign(close=1.0) for key, frame in bars.items()}
    with pytest.raises(DataError, match="never moves within 10 bars"):
        label_symbols(job, flat, features)
