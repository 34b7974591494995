"""`trainwire train` in a real terminal (tmux): the screen a user sees has the live progress
bars, the step text and the final model line."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[str]:
    orch, trainer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    trainer_args = ["trainer", "--listen", trainer, "--work-dir", str(tmp_path / "w")]
    orchestrator_args = ["orchestrator", "--listen", orch, "--node", trainer]
    orchestrator_args += ["--state-dir", str(tmp_path / "s")]
    with (
        service(trainer_args, tmp_path / "t.log") as t,
        service(orchestrator_args, tmp_path / "o.log") as o,
    ):
        wait_serving(trainer, t)
        wait_serving(orch, o)
        yield orch


EPOCHS = 10
BARS = 20_000
"""Long enough that training spans many redraws of the live display (8 a second)."""

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z])")
_EPOCH_BAR = re.compile(r"^Epoch +[━╸╺]+ +(\d+)/(\d+)\b")
_BATCH_BAR = re.compile(r"^Batch +[━╸╺]+ +(\d+)/(\d+) +(\d:\d\d:\d\d)? *epoch (\d+)")
_STEP_BAR = re.compile(r"^Step (\d+)/(\d+) +[━╸╺]+ +([\d.]+)% +(\d:\d\d:\d\d)? *(.*)$")
needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed (.ci/run installs it: apt-get install tmux)",
)


class Tmux:
    """A tmux server of its own (``-L``), so the test neither sees nor disturbs the user's."""

    def __init__(self) -> None:
        self.socket = f"tw-test-{uuid.uuid4().hex[:8]}"

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.socket, *args]

    def shell(self, *args: str) -> str:
        return shlex.join(self.argv(*args))

    def __call__(self, *args: str, timeout: float = 10) -> str:
        return subprocess.run(
            self.argv(*args), capture_output=True, text=True, check=True, timeout=timeout
        ).stdout

    def kill_server(self) -> None:
        subprocess.run(self.argv("kill-server"), capture_output=True, check=False, timeout=10)

    def screen_when(self, session: str, text: str, timeout: float = 120) -> str:
        """The pane's screen once ``text`` is on it (tmux draws asynchronously: poll it), lines
        the terminal wrapped joined again (``-J``), so a wrapped line shows as a long one."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self("capture-pane", "-p", "-J", "-t", session)
            if text in screen or time.monotonic() > deadline:
                return screen
            time.sleep(0.05)


def drawn_lines(raw: bytes) -> list[str]:
    """Every line the program drew on the terminal, in order, escape sequences removed: each
    redraw of the live display adds its lines again, so no frame is lost between captures."""
    text = _ANSI.sub("", raw.decode("utf-8", errors="replace"))
    return [line.rstrip() for line in re.split(r"\r\n|\r|\n", text)]


def mid_run_frames(lines: list[str]) -> set[tuple[str, str]]:
    """(epoch bar, batch bar) pairs drawn together while epochs were still to come."""
    frames = set()
    for line, below in itertools.pairwise(lines):
        epoch, batch = _EPOCH_BAR.match(line), _BATCH_BAR.match(below)
        if epoch and batch and int(epoch[1]) < int(epoch[2]) and int(batch[2]) > 0:
            frames.add((line, below))
    return frames


def train_command(orchestrator: str, epochs: int) -> str:
    return (
        f"{shlex.quote(sys.executable)} -m services.cli train --orchestrator {orchestrator} "
        f"--symbols SYNTH --timeframes 1h --epochs {epochs} --bars {BARS}"
    )


@needs_tmux
@pytest.mark.parametrize("width", [120, 80])
def test_train_in_tmux_shows_bars_steps_and_the_model(
    orchestrator: str, tmp_path: Path, width: int
) -> None:
    tmux = Tmux()
    session, raw = "train", tmp_path / "pane.raw"
    # The pane waits for "go" so that recording its output starts before the program does,
    # and signals "done" once the program has exited.
    command = (
        f"{tmux.shell('wait-for', 'go')}; {train_command(orchestrator, EPOCHS)}; echo EXIT=$?; "
        f"{tmux.shell('wait-for', '-S', 'done')}; sleep 600"
    )
    try:
        tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", "50", command)
        tmux("pipe-pane", "-t", session, f"cat > {shlex.quote(str(raw))}")
        tmux("wait-for", "-S", "go")
        tmux("wait-for", "done", timeout=150)
        final = tmux.screen_when(session, "EXIT=", timeout=5)
    finally:
        tmux.kill_server()
    assert "EXIT=0" in final, final
    screen = [line.rstrip() for line in final.splitlines()]
    # Nothing the program printed wrapped: bars, notes, the summary all fit the width.
    assert all(len(line) <= width for line in screen), [s for s in screen if len(s) > width]
    assert "Model stored: default_fuzzy_mlp/SYNTH_1h_v1" in final
    assert any(line.startswith("Result: test accuracy") for line in screen), final
    assert any("baseline (always" in line for line in screen), final
    overall = next(line for line in screen if line.startswith("Overall"))
    assert "100.0%" in overall and "━" in overall, overall  # a full bar, not a collapsed one
    assert "Step 9/12: Training model" in final
    # Each finished epoch is one line, cut to the width if need be, never wrapped onto two.
    epoch_notes = [line for line in screen if re.search(r"\d\d:\d\d:\d\d Epoch \d+/", line)]
    # (Early stopping may end the run before its last epoch; the bar ends where it stopped.)
    epoch_bar = _EPOCH_BAR.match(next(line for line in screen if line.startswith("Epoch ")))
    assert epoch_bar and epoch_bar[2] == str(EPOCHS)
    assert epoch_notes and f"Epoch {epoch_bar[1]}/{EPOCHS} · loss" in epoch_notes[-1]
    assert all(re.search(r"val_acc \d\.\d{3}$", line) for line in epoch_notes), epoch_notes
    # Labels whole: the last step's name, not "Packaging arti…".
    step = next(line for line in screen if line.startswith("Step 12/12"))
    assert step.endswith("Packaging artifact"), step

    lines = drawn_lines(raw.read_bytes())
    assert all(len(line) <= width for line in lines if line.startswith(("Overall", "Step ")))
    # While training, the epoch and batch bars were on the screen together, the epoch bar short
    # of its end: drawn live, not only in the final frame.
    frames = mid_run_frames(lines)
    bars = [line for line in lines if line.startswith(("Epoch", "Batch"))]
    assert frames, f"never drew the epoch and batch bars mid-run; bar lines drawn: {bars[-10:]}"
    # The batch bar kept moving after the first epoch (it did not stay at N/N).
    later = {
        (int(m[4]), int(m[1]))
        for m in map(_BATCH_BAR.match, lines)
        if m and int(m[4]) >= 2 and 0 < int(m[1]) < int(m[2])
    }
    assert later, f"no batch of epoch 2 or later was drawn; batch lines: {bars[-10:]}"
    # The epoch bar counts epochs; it does not repeat the step's percentage.
    assert not any("%" in line for line in lines if _EPOCH_BAR.match(line))
    # The training step's ETA is the trainer's estimate, not a constant 0:00:00.
    etas = {m[4] for m in map(_STEP_BAR.match, lines) if m and m[1] == "9" and m[4]}
    assert etas - {"0:00:00"}, f"training step ETAs drawn: {sorted(etas)}"


@needs_tmux
def test_ctrl_c_at_80_columns_leaves_one_overall_line_and_cancels(
    orchestrator: str, tmp_path: Path
) -> None:
    tmux = Tmux()
    session = "interrupt"
    command = f"{train_command(orchestrator, 100_000)}; echo EXIT=$?; sleep 600"
    try:
        tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "40", command)
        running = tmux.screen_when(session, "Epoch 2/")
        assert "Epoch 2/" in running, running
        tmux("send-keys", "-t", session, "C-c")
        asked = tmux.screen_when(session, "Cancel job")
        tmux("send-keys", "-t", session, "y", "Enter")
        final = tmux.screen_when(session, "EXIT=")
    finally:
        tmux.kill_server()
    assert "Cancel job" in asked, asked
    assert sum(line.startswith("Overall") for line in asked.splitlines()) == 1, asked
    assert "^C" not in asked
    assert "EXIT=3" in final and "cancelled" in final, final
