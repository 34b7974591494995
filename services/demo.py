"""``make demo``: an orchestrator and a trainer as real local processes, one real training run
on the built-in synthetic market with live progress, the model stored, everything stopped.

The demo trains the ``SYNTH`` symbol, which needs no data flag: ``SYNTH`` symbols are the
synthetic market's own; any other symbol needs ``--data``, ``--dataset`` or ``--synthetic``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.rpc import plumbing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(address: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with plumbing.create_sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the process for {address} exited with {proc.returncode}")
            with contextlib.suppress(Exception):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise TimeoutError(f"{address} did not report SERVING within {timeout_s:.0f}s")


@contextlib.contextmanager
def service(
    args: list[str], log: Path, prefix: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.cli ARGS`` (after ``prefix``, e.g. ``ip netns exec NS``) in its own
    session, logging to ``log``; SIGTERM on exit, SIGKILL to its group if it does not stop."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "services.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def run_demo(*, epochs: int, state_dir: Path) -> int:
    from services.cli import main as cli_main

    state_dir.mkdir(parents=True, exist_ok=True)
    orch_port, trainer_port = free_port(), free_port()
    orch, trainer = f"127.0.0.1:{orch_port}", f"127.0.0.1:{trainer_port}"
    print(f"trainwire demo: orchestrator {orch}, trainer {trainer}, state in {state_dir}/")
    with (
        service(
            ["trainer", "--listen", trainer, "--work-dir", str(state_dir / "trainer-work")],
            state_dir / "trainer.log",
        ) as trainer_proc,
        service(
            ["orchestrator", "--listen", orch, "--node", trainer, "--state-dir", str(state_dir)],
            state_dir / "orchestrator.log",
        ) as orch_proc,
    ):
        wait_serving(trainer, trainer_proc)
        wait_serving(orch, orch_proc)
        print("both services are SERVING; training on the synthetic market (SYNTH, 1h)\n")
        code = cli_main(
            [
                "train",
                "--orchestrator",
                orch,
                "--symbols",
                "SYNTH",
                "--timeframes",
                "1h",
                "--epochs",
                str(epochs),
                "--bars",
                "6000",
            ]
        )
    models = sorted(
        (state_dir / "models").glob("*/*_v*/model.safetensors"), key=lambda p: p.stat().st_mtime
    )
    if code == 0 and models:
        print(
            f"\nThe model is on disk at {models[-1].parent}/ (model.safetensors + "
            "metadata.json); logs in "
            f"{state_dir}/*.log"
        )
        print(
            "Your own bars next: `trainwire train --symbols EURUSD --timeframes 1h --data DIR` "
            "(CSV/Parquet files in DIR under the trainer's --data-dir), or `trainwire datasets "
            "upload EURUSD.csv` and then `--dataset EURUSD` on any trainer"
        )
    else:
        print(
            f"\nthe demo's training run did not succeed (exit {code}); see {state_dir}/*.log",
            file=sys.stderr,
        )
    return code
