"""`trainwire train` in a real terminal (tmux): the screen a user sees has the live progress
bars, the step text and the final model line."""

from __future__ import annotations

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


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def test_train_in_tmux_shows_bars_steps_and_the_model(orchestrator: str) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it: apt-get install tmux)")
    session = f"tw-{uuid.uuid4().hex[:8]}"
    command = (
        f"{sys.executable} -m services.cli train --orchestrator {orchestrator} "
        "--symbols SYNTH --timeframes 1h --epochs 6 --bars 3000; echo EXIT=$?; sleep 60"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "50", command)
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            screen = _tmux("capture-pane", "-p", "-t", session)
            screens.append(screen)
            if "EXIT=" in screen:
                break
            time.sleep(0.25)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, timeout=10)
    final = screens[-1]
    assert "EXIT=0" in final, final
    assert "Model stored: default_fuzzy_mlp/SYNTH_1h_v1" in final
    overall = next(line for line in final.splitlines() if line.startswith("Overall"))
    assert "100.0%" in overall and "━" in overall, overall  # a full bar, not a collapsed one
    assert "Step 9/12: Training model" in final
    assert "Epoch 6/6 · loss" in final
    mid = [s for s in screens if "Epoch " in s and "Batch " in s and "EXIT=" not in s]
    assert mid, "never saw the epoch and batch bars while training"
