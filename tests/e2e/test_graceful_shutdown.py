"""SIGTERM on a real trainer process mid-job: it stops taking work (NOT_SERVING), lets the job
run for the grace period, then cancels it with a terminal event, and exits cleanly."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.rpc import plumbing
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_sigterm_drains_then_cancels_and_exits_cleanly(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    args = ["trainer", "--listen", address, "--work-dir", str(tmp_path / "work"), "--grace", "1"]
    with service(args, tmp_path / "trainer.log") as proc:
        wait_serving(address, proc)
        request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
        request.strategy.training.epochs = 10_000  # far longer than the grace period
        request.strategy.training.early_stopping_patience = 0  # and never stopping early
        request.data.bars = 1500
        job = trainer_pb2.TrainerJob(
            job_id="drain-1", request=request, upload_target="127.0.0.1:9", upload_token="t"
        )
        events: list[ppb.ProgressEvent] = []
        running = threading.Event()

        def follow() -> None:
            with plumbing.create_sync_channel(address) as channel:
                for event in trainer_pb2_grpc.TrainerStub(channel).Train(job):
                    events.append(event)
                    if event.kind == ppb.EVENT_KIND_EPOCH:
                        running.set()

        reader = threading.Thread(target=follow)
        reader.start()
        assert running.wait(60), "training never reached its first epoch"

        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with plumbing.create_sync_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 5
            status = None
            while time.monotonic() < deadline:
                try:
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                except grpc.RpcError:
                    break
                if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                time.sleep(0.02)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as err:
                other = trainer_pb2.TrainerJob(
                    job_id="drain-2", request=request, upload_target="127.0.0.1:9"
                )
                next(iter(trainer_pb2_grpc.TrainerStub(channel).Train(other, timeout=5)))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        reader.join(30)
        assert proc.wait(30) == 0
        elapsed = time.monotonic() - sent
    assert events[-1].state == ppb.JOB_STATE_CANCELLED, events[-1]
    assert "shutting down" in events[-1].message or "shutting down" in events[-1].error.message
    assert 1.0 <= elapsed < 20
    assert not list((tmp_path / "work").glob("**/model.safetensors"))
