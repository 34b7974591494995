"""The `trainwire` client verbs as a user runs them: real processes, real exit codes."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cli")
    orch, trainer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with (
        service(["trainer", "--listen", trainer, "--work-dir", str(tmp / "w")], tmp / "t.log") as t,
        service(
            ["orchestrator", "--listen", orch, "--node", trainer, "--state-dir", str(tmp / "s")],
            tmp / "o.log",
        ) as o,
    ):
        wait_serving(trainer, t)
        wait_serving(orch, o)
        yield orch


def trainwire(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_train_json_then_models_list_show_download(orchestrator: str, tmp_path: Path) -> None:
    done = trainwire(
        "train", "--orchestrator", orchestrator, "--symbols", "SYNTH", "--timeframes", "1h",
        "--epochs", "1", "--bars", "1200", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["state"] == "succeeded"
    model = events[-1]["result"]["model"]

    listed = trainwire("models", "list", "--orchestrator", orchestrator, "--json")
    assert listed.returncode == 0, listed.stderr
    assert model["name"] in [json.loads(line)["name"] for line in listed.stdout.splitlines()]

    shown = trainwire("models", "show", model["name"], "--orchestrator", orchestrator)
    assert shown.returncode == 0, shown.stderr
    # A summary for people, a screenful, not the whole metadata as JSON.
    assert shown.stdout.startswith(model["name"]) and len(shown.stdout.splitlines()) < 30
    assert "baseline (always" in shown.stdout and "verdict:" in shown.stdout
    assert "  data  " in shown.stdout
    as_json = trainwire("models", "show", model["name"], "--orchestrator", orchestrator, "--json")
    assert json.loads(as_json.stdout)["feature_names"]

    got = trainwire(
        "models", "download", model["name"], "--orchestrator", orchestrator,
        "--dest", str(tmp_path),
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    weights, metadata = (Path(line) for line in got.stdout.splitlines())
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == model["sha256"]
    assert metadata == weights.with_name("metadata.json")
    assert (
        json.loads(metadata.read_text())["feature_names"]
        == json.loads(as_json.stdout)["feature_names"]
    )

    jobs = trainwire("jobs", "--orchestrator", orchestrator)
    assert events[-1]["job_id"] in jobs.stdout and "succeeded" in jobs.stdout


def never_stopping(tmp_path: Path) -> Path:
    """The example strategy with a patience no run reaches: it trains until cancelled."""
    text = (STRATEGIES / "rsi_mean_reversion.yaml").read_text()
    text = re.sub(r"early_stopping: \{[^}]*\}", "early_stopping_patience: 100000", text)
    assert "early_stopping_patience: 100000" in text
    path = tmp_path / "never_stopping.yaml"
    path.write_text(text)
    return path


def test_submit_watch_cancel_exit_codes(orchestrator: str, tmp_path: Path) -> None:
    submitted = trainwire(
        "submit", "--orchestrator", orchestrator, "--symbols", "SYNTH", "--timeframes", "1h",
        "--epochs", "100000", "--bars", "1500", "--strategy", str(never_stopping(tmp_path)),
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    cancelled = trainwire("cancel", job_id, "--orchestrator", orchestrator, "--reason", "test")
    assert cancelled.returncode == 0, cancelled.stderr
    watched = trainwire("watch", job_id, "--orchestrator", orchestrator)
    assert watched.returncode == 3, watched.stdout[-3000:]  # cancelled
    assert "Cancelled" in watched.stdout


def test_bad_input_unknown_job_and_unreachable_have_distinct_codes(orchestrator: str) -> None:
    bad = trainwire(
        "train", "--orchestrator", orchestrator, "--symbols", "SYNTH", "--timeframes", "7x",
    )  # fmt: skip
    assert bad.returncode == 5 and "timeframes[0]" in bad.stderr
    unknown = trainwire("watch", "nope", "--orchestrator", orchestrator)
    assert unknown.returncode == 5 and "nope" in unknown.stderr
    unreachable = trainwire("nodes", "--orchestrator", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 4 and "unreachable" in unreachable.stderr
    nodes = trainwire("nodes", "--orchestrator", orchestrator)
    assert nodes.returncode == 0 and "serving" in nodes.stdout


def test_a_dropped_watch_prints_the_command_that_resumes_it(tmp_path: Path) -> None:
    """The orchestrator goes away mid-run: the CLI says how to resume, and that command,
    run once the orchestrator is back, picks up at the next event and follows to the end."""
    orch, trainer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    orch_args = ["orchestrator", "--listen", orch, "--node", trainer, "--state-dir",
                 str(tmp_path / "s")]  # fmt: skip
    with service(["trainer", "--listen", trainer, "--work-dir", str(tmp_path / "w")],
                 tmp_path / "t.log") as t:  # fmt: skip
        wait_serving(trainer, t)
        with service(orch_args, tmp_path / "o1.log") as first:
            wait_serving(orch, first)
            follower = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "train", "--orchestrator", orch,
                 "--symbols", "SYNTH", "--timeframes", "1h", "--epochs", "40", "--bars", "3000",
                 "--strategy", str(never_stopping(tmp_path))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            assert follower.stdout is not None
            seen = [follower.stdout.readline() for _ in range(2)]
            assert seen[0].startswith("job "), seen
            for line in follower.stdout:  # until training is under way
                seen.append(line)
                if "Epoch 2/40" in line:
                    break
            first.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=60)
        assert follower.returncode == 4, err
        job_id = seen[0].split()[1]
        shown = int((seen + out.splitlines())[-1].split()[0])
        hint = re.search(rf"trainwire watch {job_id} --after-seq (\d+) --orchestrator {orch}$",
                         err, re.MULTILINE)  # fmt: skip
        assert hint, err
        resume, last_seq = hint[0], int(hint[1])
        assert last_seq >= shown  # the last event received (batches are not printed)
        with service(orch_args, tmp_path / "o2.log") as second:
            wait_serving(orch, second)
            resumed = trainwire(*resume.split()[1:], "--json")
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    # Every event after the last one shown, none twice, to the end.
    assert [e["seq"] for e in events] == list(range(last_seq + 1, last_seq + 1 + len(events)))
    assert {e["job_id"] for e in events} == {job_id}
    assert events[-1]["state"] == "succeeded"
