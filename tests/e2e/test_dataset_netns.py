"""A trainer across the network with no data of its own trains on an uploaded dataset.

Real processes: the trainer runs in its own network namespace (behind a veth pair, as on a
separate host) with no ``--data-dir``; the orchestrator runs outside. Both require the bearer
token, so the trainer's dataset fetch must present it too. GOOG daily is uploaded to the
orchestrator, trained on twice; the second job finds the file in the trainer's cache."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.rpc import plumbing
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.e2e import netns
from tests.e2e.test_reliability import orchestrator_args, tails, trainer_args
from tests.integration.test_datasets import GOOG
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _upload() -> Iterator[dpb.DatasetChunk]:
    yield dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name="goog"))
    yield dpb.DatasetChunk(
        file=dpb.DatasetFileHeader(
            filename="GOOG.csv", size_bytes=len(GOOG), sha256=hashlib.sha256(GOOG).hexdigest()
        )
    )
    yield dpb.DatasetChunk(data=GOOG)


def _request(epochs: int) -> spb.TrainRequest:
    request = spb.TrainRequest(
        symbols=["GOOG"],
        timeframes=["1d"],
        data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_DATASET, dataset="goog"),
    )
    request.strategy.training.epochs = epochs
    request.strategy.labels.auto_threshold = True
    return request


def test_a_remote_trainer_without_data_trains_on_an_uploaded_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = secrets.token_urlsafe(24)
    monkeypatch.setenv("TRAINWIRE_TOKEN", token)  # both processes inherit it
    logs = [tmp_path / "trainer.log", tmp_path / "orchestrator.log"]
    work = tmp_path / "work"
    with contextlib.ExitStack() as stack:
        try:
            link = stack.enter_context(netns.veth_namespace())
        except netns.NetnsUnavailable as exc:
            pytest.skip(f"network namespaces are not available here: {exc}")
        trainer_address = f"{link.ns_ip}:50052"
        orch_address = f"{link.host_ip}:{free_port()}"
        trainer = stack.enter_context(
            netns.spawn_in(
                link.ns,
                trainer_args(trainer_address, work, "--advertise", trainer_address),
                logs[0],
            )
        )
        orch = stack.enter_context(
            service(
                orchestrator_args(
                    orch_address, [trainer_address], tmp_path / "state", "--advertise", orch_address
                ),
                logs[1],
            )
        )
        security = plumbing.Security(token=token)
        wait_serving(trainer_address, trainer)
        wait_serving(orch_address, orch)
        with plumbing.create_sync_channel(orch_address, security) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            dataset = stub.UploadDataset(_upload(), timeout=60)
            runs = [list(stub.Train(_request(epochs), timeout=240)) for epochs in (2, 1)]

    first, second = runs
    for events in runs:
        assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, f"{events[-1]}\n{tails(*logs)}"
    label = f"goog@{dataset.sha256[:12]}"
    assert [e.message for e in first if e.message.startswith("Fetching dataset")] == [
        f"Fetching dataset {label} from {orch_address} (1 of 1 file(s), 0.1 MB)"
    ]
    assert not [e for e in second if e.message.startswith("Fetching dataset")]
    assert any("already on this node" in e.message for e in second)
    cached = work / "datasets" / "blobs" / dataset.files[0].sha256
    assert cached.read_bytes() == GOOG
    assert first[-1].result.data.source == "dataset"
