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

from services.demo import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


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
_EPOCH_BAR = re.compile(r"^Epoch (\d+)/(\d+) +[━╸╺]+ +[\d.]+%")
_BATCH_BAR = re.compile(r"^Batch (\d+)/(\d+) +[━╸╺]+ +[\d.]+%")


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


@pytest.mark.skipif(
    shutil.which("tmux") is None,
    reason="tmux is not installed (.ci/run installs it: apt-get install tmux)",
)
def test_train_in_tmux_shows_bars_steps_and_the_model(orchestrator: str, tmp_path: Path) -> None:
    tmux = Tmux()
    session, raw = "train", tmp_path / "pane.raw"
    train = (
        f"{shlex.quote(sys.executable)} -m services.cli train --orchestrator {orchestrator} "
        f"--symbols SYNTH --timeframes 1h --epochs {EPOCHS} --bars {BARS}"
    )
    # The pane waits for "go" so that recording its output starts before the program does,
    # and signals "done" once the program has exited.
    command = (
        f"{tmux.shell('wait-for', 'go')}; {train}; echo EXIT=$?; "
        f"{tmux.shell('wait-for', '-S', 'done')}; sleep 600"
    )
    try:
        tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", command)
        tmux("pipe-pane", "-t", session, f"cat > {shlex.quote(str(raw))}")
        tmux("wait-for", "-S", "go")
        tmux("wait-for", "done", timeout=150)
        final = tmux("capture-pane", "-p", "-t", session)
        for _ in range(100):  # the server may not have drawn the last bytes yet
            if "EXIT=" in final:
                break
            time.sleep(0.05)
            final = tmux("capture-pane", "-p", "-t", session)
    finally:
        tmux.kill_server()
    assert "EXIT=0" in final, final
    assert "Model stored: default_fuzzy_mlp/SYNTH_1h_v1" in final
    overall = next(line for line in final.splitlines() if line.startswith("Overall"))
    assert "100.0%" in overall and "━" in overall, overall  # a full bar, not a collapsed one
    assert "Step 9/12: Training model" in final
    assert f"Epoch {EPOCHS}/{EPOCHS} · loss" in final
    # While training, the epoch and batch bars were on the screen together, the epoch bar short
    # of its end: drawn live, not only in the final frame.
    lines = drawn_lines(raw.read_bytes())
    frames = mid_run_frames(lines)
    bars = [line for line in lines if line.startswith(("Epoch", "Batch"))]
    assert frames, f"never drew the epoch and batch bars mid-run; bar lines drawn: {bars[-10:]}"
