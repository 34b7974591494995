"""ProgressTracker: weights, monotonic percentage, throttling with a fake clock, rendering."""

from __future__ import annotations

from itertools import pairwise

import pytest

from shared.progress.tracker import (
    TRAINING_STEPS,
    ProgressTracker,
    Step,
    render_batch,
    render_context,
    render_epoch,
)
from shared.progress.update import ItemCounter, PreprocessContext, ProgressUpdate, UpdateKind


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _tracker(**kwargs: object) -> tuple[ProgressTracker, list[ProgressUpdate], FakeClock]:
    updates: list[ProgressUpdate] = []
    clock = FakeClock()
    tracker = ProgressTracker(updates.append, clock=clock, **kwargs)  # type: ignore[arg-type]
    return tracker, updates, clock


def _simulate_run(tracker: ProgressTracker, clock: FakeClock, epochs: int, batches: int) -> None:
    for index in range(1, 13):
        tracker.start_step(index)
        if index == 2:
            for k in range(4):
                clock.advance(0.1)
                tracker.detail(k / 4, context=PreprocessContext(symbol="A", detail="RSI"))
        if index == 9:
            tracker.begin_training(epochs, batches)
            for epoch in range(1, epochs + 1):
                for batch in range(1, batches + 1):
                    clock.advance(0.02)
                    if tracker.batch_due():
                        tracker.batch(
                            epoch=epoch,
                            total_epochs=epochs,
                            batch=batch,
                            total_batches=batches,
                            metrics={"loss": 1.0},
                        )
                tracker.epoch(
                    epoch=epoch, total_epochs=epochs, total_batches=batches, metrics={"loss": 1.0}
                )
        clock.advance(0.05)
        tracker.finish_step()


def test_twelve_steps_with_training_heaviest() -> None:
    assert len(TRAINING_STEPS) == 12
    assert sum(s.weight for s in TRAINING_STEPS) == pytest.approx(100)
    heaviest = max(TRAINING_STEPS, key=lambda s: s.weight)
    assert TRAINING_STEPS.index(heaviest) == 8 and heaviest.weight >= 70


def test_percentage_is_monotonic_and_ends_at_100() -> None:
    tracker, updates, clock = _tracker()
    _simulate_run(tracker, clock, epochs=5, batches=200)
    percentages = [u.percentage for u in updates]
    assert percentages == sorted(percentages)
    assert percentages[-1] == 100.0
    assert all(0.0 <= p <= 100.0 for p in percentages)
    assert [u.step_index for u in updates] == sorted(u.step_index for u in updates)


def test_step_and_epoch_updates_are_never_dropped() -> None:
    tracker, updates, clock = _tracker()
    _simulate_run(tracker, clock, epochs=7, batches=50)
    steps = [u for u in updates if u.kind is UpdateKind.STEP]
    epochs = [u for u in updates if u.kind is UpdateKind.EPOCH]
    assert len(steps) == 24  # start and finish of each step
    assert [u.epoch for u in epochs] == list(range(1, 8))
    assert all(u.batch == u.total_batches == 50 for u in epochs)
    assert epochs[-1].step_percentage == pytest.approx(100.0)


def test_batch_stride_starts_at_ten_and_jumps_to_the_target_pace() -> None:
    tracker, _, clock = _tracker()
    tracker.start_step(9)
    tracker.begin_training(1, 10_000)
    due = []
    for batch in range(1, 1000):
        clock.advance(0.001)  # 1 ms per batch
        if tracker.batch_due():
            due.append(batch)
            tracker.batch(epoch=1, total_epochs=1, batch=batch, total_batches=10_000, metrics={})
    # 10 batches took 10 ms: 300 ms is 300 batches, from the first update on
    assert due == [10, 310, 610, 910]
    assert tracker.stride == 300


def test_batch_stride_growth_is_bounded_when_the_clock_stands_still() -> None:
    tracker, _, _ = _tracker()
    tracker.start_step(9)
    tracker.begin_training(1, 10_000)
    for _ in range(10):
        tracker.batch_due()
    tracker.batch(epoch=1, total_epochs=1, batch=10, total_batches=10_000, metrics={})
    assert tracker.stride == 10 * 64


def test_batch_stride_shrinks_when_slow_and_holds_near_target() -> None:
    tracker, _, clock = _tracker(initial_stride=8)
    tracker.start_step(9)
    tracker.begin_training(1, 10_000)
    strides = []
    for batch in range(1, 200):
        clock.advance(0.2)  # 200 ms per batch: 8 batches = 1.6 s > 450 ms
        if tracker.batch_due():
            tracker.batch(epoch=1, total_epochs=1, batch=batch, total_batches=10_000, metrics={})
            strides.append(tracker.stride)
    assert strides[:3] == [2, 2, 2]  # 1.6 s for 8 -> 1.5 batches per 300 ms -> 2; 400 ms holds
    assert tracker.stride == 2


def test_batch_due_is_cheap_and_counts_only() -> None:
    tracker, updates, _ = _tracker()
    tracker.start_step(9)
    tracker.begin_training(1, 100)
    count = len(updates)
    assert [tracker.batch_due() for _ in range(9)] == [False] * 9
    assert len(updates) == count  # nothing emitted by asking


def test_training_eta_from_measured_batches() -> None:
    tracker, updates, clock = _tracker()
    tracker.start_step(9)
    tracker.begin_training(2, 50)  # 100 batches in all
    for batch in range(1, 11):
        clock.advance(0.01)
        if tracker.batch_due():
            tracker.batch(epoch=1, total_epochs=2, batch=batch, total_batches=50, metrics={})
    last = updates[-1]
    assert last.kind is UpdateKind.BATCH and last.batch == 10
    assert last.eta_seconds == pytest.approx(0.9)  # 10 ms x 90 batches left
    assert last.step_percentage == pytest.approx(10.0)
    assert last.message == "Epoch 1/2 · Batch 10/50"


def test_eta_before_training_from_weights() -> None:
    tracker, updates, clock = _tracker(steps=[Step("a", 1), Step("b", 1)])
    tracker.start_step(1)
    assert updates[-1].eta_seconds is None  # nothing to extrapolate from yet
    clock.advance(2.0)
    tracker.finish_step()
    assert updates[-1].percentage == pytest.approx(50.0)
    assert updates[-1].eta_seconds == pytest.approx(2.0)


def test_detail_updates_are_coalesced() -> None:
    tracker, updates, clock = _tracker(detail_interval=0.05)
    tracker.start_step(2)
    for k in range(10):
        tracker.detail(k / 10, message=f"item {k}")  # clock stands still
    details = [u for u in updates if u.kind is UpdateKind.DETAIL]
    assert [u.message for u in details] == ["item 0"]  # the first always goes out
    clock.advance(0.06)
    tracker.detail(0.95, message="late")
    assert updates[-1].message == "late"
    assert updates[-1].step_percentage == pytest.approx(95.0)


def test_detail_carries_context_and_items() -> None:
    tracker, updates, _ = _tracker()
    tracker.start_step(2)
    ctx = PreprocessContext(
        symbol="AAPL",
        symbol_index=2,
        symbol_total=5,
        timeframe="1h",
        detail="Computing RSI",
        detail_index=15,
        detail_total=40,
    )
    tracker.detail(0.3, context=ctx, items=ItemCounter(name="indicators", current=55, total=200))
    update = updates[-1]
    assert update.message == "Processing AAPL (2/5) [1h] - Computing RSI (15/40)"
    assert update.context == ctx and update.items is not None and update.items.current == 55
    assert update.step_name == TRAINING_STEPS[1].name and update.step_total == 12


def test_percentage_never_goes_back() -> None:
    tracker, updates, clock = _tracker(detail_interval=0.05)
    tracker.start_step(2)
    clock.advance(0.1)
    tracker.detail(0.8, message="x")
    clock.advance(0.1)  # past the coalescing interval: the second detail goes out too
    tracker.detail(0.2, message="y")  # a smaller fraction does not pull the bar back
    details = [u for u in updates if u.kind is UpdateKind.DETAIL]
    assert [u.message for u in details] == ["x", "y"]
    assert details[1].step_percentage == pytest.approx(80.0)
    assert details[1].percentage == pytest.approx(details[0].percentage)
    assert details[0].percentage > updates[0].percentage  # the 0.8 really moved the bar
    with pytest.raises(ValueError):
        tracker.start_step(1)


def test_rendering() -> None:
    assert render_context(
        PreprocessContext(
            symbol="AAPL",
            symbol_index=2,
            symbol_total=5,
            timeframe="1h",
            detail="Computing RSI",
            detail_index=15,
            detail_total=40,
        )
    ) == ("Processing AAPL (2/5) [1h] - Computing RSI (15/40)")
    assert render_context(
        PreprocessContext(symbol="X", symbol_index=1, symbol_total=1, detail="Labelling")
    ) == ("Processing X (1/1) - Labelling")
    assert render_batch(5, 100, 120, 500) == "Epoch 5/100 · Batch 120/500"
    assert render_epoch(5, 100, {"loss": 0.23456, "val_accuracy": 0.87}) == (
        "Epoch 5/100 · loss 0.2346 · val_accuracy 0.870"
    )


def test_a_warning_is_never_dropped_and_carries_its_counts() -> None:
    tracker, updates, _ = _tracker()
    tracker.start_step(1)
    tracker.detail(0.5, message="half")
    tracker.warning("3 gaps in EURUSD 1h", counts={"gaps": 3})
    tracker.warning("1 duplicate row in EURUSD 1h", counts={"duplicates": 1})
    warnings = [u for u in updates if u.kind is UpdateKind.WARNING]
    assert [w.message for w in warnings] == ["3 gaps in EURUSD 1h", "1 duplicate row in EURUSD 1h"]
    assert warnings[0].metrics == {"gaps": 3} and warnings[0].step_index == 1


def _stamped(
    **kwargs: object,
) -> tuple[ProgressTracker, list[tuple[float, ProgressUpdate]], FakeClock]:
    """A tracker whose sink records each update with the fake time it was emitted at."""
    seen: list[tuple[float, ProgressUpdate]] = []
    clock = FakeClock()
    tracker = ProgressTracker(
        lambda u: seen.append((clock.now, u)),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    return tracker, seen, clock


def _train(
    tracker: ProgressTracker,
    clock: FakeClock,
    *,
    epochs: int,
    batches: int,
    per_batch: float,
    validation: float,
) -> None:
    """Step 9 as the training loop drives it: batches, then validation, then the EPOCH update."""
    tracker.start_step(9)
    tracker.begin_training(epochs, batches)
    for epoch in range(1, epochs + 1):
        for batch in range(1, batches + 1):
            clock.advance(per_batch)
            if tracker.batch_due():
                tracker.batch(
                    epoch=epoch,
                    total_epochs=epochs,
                    batch=batch,
                    total_batches=batches,
                    metrics={"loss": 1.0},
                )
        clock.advance(validation)
        tracker.epoch(epoch=epoch, total_epochs=epochs, total_batches=batches, metrics={})


def test_batch_updates_keep_coming_when_epochs_are_shorter_than_the_interval() -> None:
    """507 batches of 0.45 ms and 20 ms of validation: ~0.25 s epochs, each followed by an EPOCH
    update. Batch updates must not stop after epoch 1: they keep coming ~300 ms apart."""
    tracker, seen, clock = _stamped()
    _train(tracker, clock, epochs=40, batches=507, per_batch=0.00045, validation=0.02)
    batch_times = [t for t, u in seen if u.kind is UpdateKind.BATCH]
    assert len([u for _, u in seen if u.kind is UpdateKind.EPOCH]) == 40
    assert batch_times[-1] > clock.now - 0.5  # still coming at the end of the run
    settled = [b - a for a, b in pairwise(batch_times) if a > 1.0]
    assert len(settled) >= 25  # ~9 s of training after the first second, one every ~300 ms
    assert all(0.15 <= gap <= 0.5 for gap in settled)
    assert tracker.stride < 2 * 507  # bounded: about 300 ms of batches
    later = {u.epoch for _, u in seen if u.kind is UpdateKind.BATCH and u.epoch > 1}
    assert len(later) >= 25  # batch updates land in most epochs, not only the first


def test_batch_updates_inside_long_epochs() -> None:
    """5 ms batches: every epoch after the first carries batch updates ~300 ms apart."""
    tracker, seen, clock = _stamped()
    _train(tracker, clock, epochs=4, batches=507, per_batch=0.005, validation=0.1)
    for epoch in (2, 3, 4):
        batches = [u.batch for _, u in seen if u.kind is UpdateKind.BATCH and u.epoch == epoch]
        assert len(batches) >= 6 and batches == sorted(batches)
        assert batches[0] < 100 and batches[-1] > 400
    times = [t for t, u in seen if u.kind is UpdateKind.BATCH and t > 1.0]
    assert all(0.15 <= b - a <= 0.5 for a, b in pairwise(times))


def test_epoch_updates_do_not_restart_the_batch_interval() -> None:
    """Throttling measures the time between BATCH updates: an EPOCH update in between (never
    dropped) does not make the next batch interval look short and the stride grow."""
    tracker, updates, clock = _tracker(initial_stride=100)
    tracker.start_step(9)
    tracker.begin_training(10, 60)
    due = []
    for n in range(1, 101):  # 60 batches of epoch 1, 40 of epoch 2, 2.5 ms each
        clock.advance(0.0025)
        if tracker.batch_due():
            due.append(n)
        if n == 60:
            tracker.epoch(epoch=1, total_epochs=10, total_batches=60, metrics={})
    assert due == [100]
    # 250 ms since training began: on target, although the EPOCH update was 100 ms ago
    tracker.batch(epoch=2, total_epochs=10, batch=40, total_batches=60, metrics={})
    assert tracker.stride == 100
    assert [u.kind for u in updates[-2:]] == [UpdateKind.EPOCH, UpdateKind.BATCH]


def test_positions_and_step_percentage_during_training() -> None:
    tracker, seen, clock = _stamped(initial_stride=50)
    _train(tracker, clock, epochs=4, batches=100, per_batch=0.005, validation=0.0)
    batch = next(u for _, u in seen if u.kind is UpdateKind.BATCH and u.epoch == 2)
    # the epoch in progress, batches done in it; the step's share done = the epochs' share done
    assert (batch.epoch, batch.total_epochs, batch.total_batches) == (2, 4, 100)
    assert batch.step_percentage == pytest.approx(100 * (100 + batch.batch) / 400)
    epochs = [u for _, u in seen if u.kind is UpdateKind.EPOCH]
    assert [(u.epoch, u.batch) for u in epochs] == [(1, 100), (2, 100), (3, 100), (4, 100)]
    assert [u.step_percentage for u in epochs] == pytest.approx([25.0, 50.0, 75.0, 100.0])


def test_eta_is_exact_for_an_even_pace() -> None:
    """When every step takes time in proportion to its weight and batches take equal time, each
    update's ETA is exactly the time left: in the training step until training ends (never
    stuck at zero), otherwise until the job ends."""
    seconds_per_weight = 0.2
    epochs, batches = 5, 40
    per_batch = TRAINING_STEPS[8].weight * seconds_per_weight / (epochs * batches)
    tracker, seen, clock = _stamped(initial_stride=3)
    training_ends = 0.0
    for index, step in enumerate(TRAINING_STEPS, start=1):
        tracker.start_step(index)
        if index == 9:
            tracker.begin_training(epochs, batches)
            for epoch in range(1, epochs + 1):
                for batch in range(1, batches + 1):
                    clock.advance(per_batch)
                    if tracker.batch_due():
                        tracker.batch(
                            epoch=epoch,
                            total_epochs=epochs,
                            batch=batch,
                            total_batches=batches,
                            metrics={},
                        )
                tracker.epoch(epoch=epoch, total_epochs=epochs, total_batches=batches, metrics={})
            training_ends = clock.now
        else:
            clock.advance(step.weight * seconds_per_weight)
        tracker.finish_step()
    end = clock.now
    assert seen[0][1].eta_seconds is None  # nothing to extrapolate from yet
    timed = seen[1:]
    training = [
        (t, u)
        for t, u in timed
        if u.kind in (UpdateKind.BATCH, UpdateKind.EPOCH) and t < training_ends
    ]
    assert len(training) > 20
    for t, update in timed:
        left = training_ends - t if (t, update) in training else end - t
        assert update.eta_seconds == pytest.approx(left, abs=1e-6), update.message
    assert all((u.eta_seconds or 0.0) > 0.5 for t, u in training if training_ends - t > 0.5)
