"""`make demo` (`trainwire demo`): real processes, a real run on the synthetic market, the
model stored with its metadata, its data named and its baseline shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_demo_trains_synth_and_says_where_the_model_is(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--epochs", "1", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    model = state / "models" / "default_fuzzy_mlp" / "SYNTH_1h_v1"
    assert sorted(p.name for p in model.iterdir()) == ["metadata.json", "model.safetensors"]
    assert f"The model is on disk at {model}/" in done.stdout
    assert "Data: synthetic seed 7 · 2020-01-01 00:00" in done.stdout
    assert "baseline (always" in done.stdout
    assert "--data DIR" in done.stdout and "datasets upload" in done.stdout
