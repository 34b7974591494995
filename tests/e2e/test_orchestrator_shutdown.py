"""SIGTERM on a real orchestrator process: watch streams end at once with where to resume (they
are not work to drain), so it exits promptly; an upload in progress still completes first."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.rpc import plumbing
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.integration.test_datasets import GOOG
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
EXIT_WITHIN_S = 5.0
"""Generous: the orchestrator needs well under a second with nothing to drain."""


def _orchestrator(tmp_path: Path) -> tuple[str, list[str]]:
    address = f"127.0.0.1:{free_port()}"
    return address, ["orchestrator", "--listen", address, "--state-dir", str(tmp_path / "state")]


def _wait_shutting_down(address: str) -> None:
    """Until the orchestrator reports NOT_SERVING or refuses new calls: SIGTERM was handled."""
    with plumbing.create_sync_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
            except grpc.RpcError:
                return
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                return
            time.sleep(0.02)
    raise AssertionError("the orchestrator never began shutting down")


def _wait_receiving(uploads: Path, size: int) -> None:
    """Until the orchestrator has written ``size`` bytes of the upload: the call is in."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.stat().st_size >= size for p in uploads.glob("*/GOOG.csv")):
            return
        time.sleep(0.02)
    raise AssertionError("the orchestrator never received the first half of the upload")


def test_sigterm_ends_watch_streams_at_once_and_exits(tmp_path: Path) -> None:
    address, args = _orchestrator(tmp_path)
    with service(args, tmp_path / "orchestrator.log") as proc:
        wait_serving(address, proc)
        with plumbing.create_sync_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            # No trainer: the job waits QUEUED, and its watcher would wait with it forever.
            job = stub.SubmitJob(spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"]))
            watch = iter(stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)))
            first = next(watch)
            assert first.state == ppb.JOB_STATE_QUEUED

            proc.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.RpcError) as err:
                for _ in watch:
                    pass
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in (err.value.details() or "")
            assert "after_seq" in (err.value.details() or "")
        try:
            assert proc.wait(timeout=EXIT_WITHIN_S) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"the orchestrator took longer than {EXIT_WITHIN_S}s to exit on SIGTERM")


def test_sigterm_lets_an_upload_in_progress_finish(tmp_path: Path) -> None:
    address, args = _orchestrator(tmp_path)
    half = threading.Event()
    go_on = threading.Event()

    def chunks() -> Iterator[dpb.DatasetChunk]:
        yield dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog"))
        digest = hashlib.sha256(GOOG).hexdigest()
        yield dpb.DatasetChunk(
            file=dpb.DatasetFileHeader(filename="GOOG.csv", size_bytes=len(GOOG), sha256=digest)
        )
        middle = len(GOOG) // 2
        yield dpb.DatasetChunk(data=GOOG[:middle])
        half.set()
        assert go_on.wait(30)
        yield dpb.DatasetChunk(data=GOOG[middle:])

    with service(args, tmp_path / "orchestrator.log") as proc:
        wait_serving(address, proc)
        with plumbing.create_sync_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            call = stub.UploadDataset.future(chunks(), timeout=60)
            assert half.wait(30)
            _wait_receiving(tmp_path / "state" / "datasets" / "tmp", len(GOOG) // 2)
            proc.send_signal(signal.SIGTERM)
            _wait_shutting_down(address)
            go_on.set()
            dataset = call.result()
        assert dataset.name == "goog" and dataset.files[0].rows > 2000
        assert proc.wait(timeout=EXIT_WITHIN_S) == 0
    blob = tmp_path / "state" / "datasets" / "blobs" / hashlib.sha256(GOOG).hexdigest()
    assert blob.read_bytes() == GOOG
