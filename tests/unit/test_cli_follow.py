"""What `trainwire train|watch` draws: the bars a person watches, the plain lines a log keeps,
the hint that resumes a dropped watch."""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import Iterator

import pytest
from rich.console import Console

from services import commands
from services.exit_codes import ExitCode
from services.follow import LiveRenderer, clock, follow
from shared import errors
from shared.jobs import EventKind, JobEvent, JobState

JOB = "7f3e9a1c2b4d4e6f"
EPOCHS, BATCHES = 3, 507


def event(seq: int, kind: EventKind, **fields: object) -> JobEvent:
    state = fields.pop("state", JobState.RUNNING)
    assert isinstance(state, JobState)
    return JobEvent(job_id=JOB, seq=seq, time=float(seq), state=state, kind=kind, **fields)  # type: ignore[arg-type]


def training(step: int = 9, total: int = 12) -> Iterator[JobEvent]:
    """A run's events from step 1 to the end: steps, a warning, batches and epochs."""
    seq = iter(range(1, 10_000))
    yield event(next(seq), EventKind.LIFECYCLE, message="Started on 127.0.0.1:50052")
    for index, name in ((1, "Loading market data"), (2, "Computing indicators")):
        yield event(next(seq), EventKind.STEP, step_index=index, step_total=total, step_name=name,
                    message=name, percentage=index * 3.0)  # fmt: skip
    yield event(next(seq), EventKind.WARNING, step_index=2, step_total=total,
                step_name="Computing indicators", message="EURUSD 1h: 12 gaps (longest 3 bars)",
                metrics={"gaps": 12})  # fmt: skip
    common = {"step_index": step, "step_total": total, "step_name": "Training model",
              "total_epochs": EPOCHS, "total_batches": BATCHES}  # fmt: skip
    left = EPOCHS * BATCHES
    for epoch in range(1, EPOCHS + 1):
        for batch in (100, 300):
            done = (epoch - 1) * BATCHES + batch
            yield event(next(seq), EventKind.BATCH, epoch=epoch, batch=batch,
                        message=f"Epoch {epoch}/{EPOCHS} · Batch {batch}/{BATCHES}",
                        metrics={"loss": 1.1 - epoch / 10, "accuracy": 0.4},
                        step_percentage=100 * done / left, percentage=20 + 75 * done / left,
                        eta_seconds=0.01 * (left - done), **common)  # fmt: skip
        done = epoch * BATCHES
        yield event(next(seq), EventKind.EPOCH, epoch=epoch, batch=BATCHES,
                    message=f"Epoch {epoch}/{EPOCHS} · loss 0.9811 · accuracy 0.512 · "
                    "val_loss 0.9933 · val_accuracy 0.501",
                    metrics={"loss": 0.98114, "accuracy": 0.5123, "val_loss": 0.99331,
                             "val_accuracy": 0.5012},
                    step_percentage=100 * done / left, percentage=20 + 75 * done / left,
                    eta_seconds=0.01 * (left - done), **common)  # fmt: skip
    yield event(next(seq), EventKind.STEP, step_index=12, step_total=total, percentage=98.0,
                step_name="Packaging artifact", message="Packaging artifact")  # fmt: skip
    yield event(next(seq), EventKind.LIFECYCLE, state=JobState.SUCCEEDED, percentage=100.0,
                message="Succeeded: model default_fuzzy_mlp/EURUSD_1h_v1 stored")  # fmt: skip


def screen(renderer: LiveRenderer, width: int) -> list[str]:
    """The bars as the terminal shows them at ``width`` columns."""
    out = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    out.print(renderer.progress.get_renderable())
    text = out.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in text.splitlines()]


def renderer(width: int) -> tuple[LiveRenderer, io.StringIO]:
    log = io.StringIO()
    console = Console(file=log, width=width, force_terminal=True, color_system=None)
    return LiveRenderer(console), log


def bar(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.startswith(name))


def run_until(r: LiveRenderer, stop: int) -> JobEvent:
    for e in training():
        r.update(e)
        if e.seq == stop:
            return e
    raise AssertionError(f"no event {stop}")


def test_after_an_epoch_the_batch_bar_starts_the_next_one_instead_of_staying_full() -> None:
    r, _ = renderer(120)
    first_epoch_end = next(e.seq for e in training() if e.kind is EventKind.EPOCH)
    run_until(r, first_epoch_end)
    lines = screen(r, 120)
    assert re.search(r"0/507 .*epoch 2", bar(lines, "Batch")), lines
    assert "1/3" in bar(lines, "Epoch")
    run_until(r, first_epoch_end + 1)  # the next epoch's first reported batch
    assert re.search(r"100/507 .*epoch 2 · loss 0\.9000", bar(screen(r, 120), "Batch"))


def test_the_epoch_bar_counts_epochs_and_keeps_the_last_metrics_through_batches() -> None:
    r, _ = renderer(120)
    first_epoch_end = next(e.seq for e in training() if e.kind is EventKind.EPOCH)
    run_until(r, first_epoch_end + 1)  # a batch event after the epoch event
    epoch = bar(screen(r, 120), "Epoch")
    step = bar(screen(r, 120), "Step")
    assert "1/3" in epoch and "loss 0.9811 · acc 0.512 · val_loss 0.9933" in epoch
    assert "None" not in epoch
    # The step bar has the step's percentage; the epoch bar does not repeat it.
    step_percent = re.search(r"(\d+\.\d)%", step)
    assert step_percent and step_percent[1] not in epoch


def test_etas_are_the_trainers_not_zero() -> None:
    r, _ = renderer(120)
    e = run_until(r, 8)  # a batch of epoch 2: 100/507 of 1521 batches done
    assert e.kind is EventKind.BATCH and e.eta_seconds
    lines = screen(r, 120)
    # The trainer says 9.14 s of training are left, 4.07 s of them in this epoch.
    assert re.search(r" 0:00:0[89] ", bar(lines, "Step")), lines
    assert re.search(r" 0:00:0[34] ", bar(lines, "Batch")), lines
    assert re.search(r" 0:00:0[89] ", bar(lines, "Overall")), lines


@pytest.mark.parametrize("width", [80, 120])
def test_nothing_wraps_and_no_label_is_cut(width: int) -> None:
    r, log = renderer(width)
    for e in training():
        r.update(e)
        lines = screen(r, width)
        assert len(lines) == (2 if e.seq < 5 else 4), lines
        assert all(len(line) <= width for line in lines)
        if e.step_index == 12:
            assert "Packaging artifact" in bar(lines, "Step 12/12")
    notes = log.getvalue().splitlines()
    assert all(len(line) <= width for line in notes), notes
    epoch_lines = [line for line in notes if "Epoch 3/3 · loss" in line]
    assert len(epoch_lines) == 1 and "val_acc 0.501" in epoch_lines[0]
    assert any("warning: EURUSD 1h: 12 gaps" in line for line in notes)
    assert any("Step 9/12: Training model" in line for line in notes)


def test_plain_mode_starts_with_the_job_id_and_numbers_its_lines() -> None:
    out = io.StringIO()
    last = follow(training(), as_json=False, out=out)
    assert last is not None and last.state is JobState.SUCCEEDED
    lines = out.getvalue().splitlines()
    assert lines[0] == f"job {JOB}"
    assert re.fullmatch(r" +1  \[  0\.0%\] Started on 127\.0\.0\.1:50052", lines[1])
    assert "     4  warning: EURUSD 1h: 12 gaps (longest 3 bars)" in lines
    # Batches in between are not printed; epochs are.
    assert not any("Batch 100/507" in line for line in lines)
    assert sum("Epoch" in line for line in lines) == EPOCHS


def test_a_dropped_connection_prints_the_command_that_resumes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAINWIRE_ORCHESTRATOR", raising=False)

    def dropped() -> Iterator[JobEvent]:
        for e in training():
            yield e
            if e.seq == 7:
                error = errors.UnavailableError("orchestrator 10.0.0.5:50051: Socket closed")
                error.code = "UNAVAILABLE"
                raise error

    args = argparse.Namespace(json=False, orchestrator="10.0.0.5:50051", after_seq=0)
    code = commands._follow(args, None, dropped())  # type: ignore[arg-type]
    captured = capsys.readouterr()
    assert code == ExitCode.UNREACHABLE
    assert captured.out.splitlines()[0] == f"job {JOB}"
    assert "UNAVAILABLE: orchestrator 10.0.0.5:50051: Socket closed" in captured.err
    assert f"trainwire watch {JOB} --after-seq 7 --orchestrator 10.0.0.5:50051" in captured.err


def test_etas_fit_their_column() -> None:
    assert [clock(s) for s in (None, 0, 252.4, 9 * 3600 + 59 * 60 + 59, 14 * 3600 + 190,
                               99 * 3600, 100 * 3600, 1000 * 86400)] == [
        "-:--:--", "0:00:00", "0:04:12", "9:59:59", "14h03m", "99h00m", "4d04h", "1000d00h",
    ]  # fmt: skip


def test_an_early_stop_ends_the_batch_bar_and_says_so_on_the_epoch_bar() -> None:
    r, _ = renderer(80)
    second_epoch_end = [e.seq for e in training() if e.kind is EventKind.EPOCH][1]
    run_until(r, second_epoch_end)
    r.update(event(99, EventKind.STEP, step_index=10, step_total=12, percentage=91.0,
                   step_name="Evaluating model", message="Evaluating model"))  # fmt: skip
    lines = screen(r, 80)
    assert re.search(r"507/507 +epoch 2$", bar(lines, "Batch")), lines
    assert re.search(r"2/3 +stopped early · loss 0\.9811", bar(lines, "Epoch")), lines
