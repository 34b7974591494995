"""`make demo` (`trainwire demo`): real processes, a real run on the synthetic market, the
model stored with its metadata, its data named and its baseline shown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
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


def test_demo_prints_the_dashboard_and_the_job_is_there_while_it_runs(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "demo", "--epochs", "40", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            match = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the demo prints the dashboard's address"
        with urllib.request.urlopen(url, timeout=10) as page:
            assert "text/html" in page.headers["Content-Type"]
        deadline = time.monotonic() + 120
        jobs: list[dict[str, object]] = []
        while time.monotonic() < deadline and not jobs:
            with urllib.request.urlopen(f"{url}api/v1/jobs", timeout=10) as reply:
                jobs = json.loads(reply.read()).get("jobs", [])
            time.sleep(0.2)
        assert jobs and jobs[0]["state"] in ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING")
        assert proc.wait(200) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
