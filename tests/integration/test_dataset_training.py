"""Training on an uploaded dataset: a trainer with no data of its own fetches the pinned
version's files from the orchestrator once, caches them by hash, and trains on them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import TrainerServer
from services.trainer.server import create_server as create_trainer
from shared.pipeline.run import TrainingOutcome, run_training
from shared.rpc import plumbing
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSpec, TrainingRequest
from tests.conftest import Cluster
from tests.integration.test_datasets import GOOG, sha, stream, upload

pytestmark = pytest.mark.timeout(180)


def dataset_request(dataset: str = "goog", epochs: int = 2) -> spb.TrainRequest:
    request = spb.TrainRequest(
        symbols=["GOOG"],
        timeframes=["1d"],
        data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_DATASET, dataset=dataset),
    )
    request.strategy.training.epochs = epochs
    return request


@dataclass
class Rig:
    orchestrator: OrchestratorServer
    trainer: TrainerServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    given: list[dict[str, bytes]]
    """The files of ``dataset_dir`` each job's pipeline was given, by name."""

    @property
    def fetched(self) -> int:
        return self.trainer.runner.datasets.files_fetched


def recording_pipeline(given: list[dict[str, bytes]]) -> Any:
    """Records the dataset directory it is given, then trains a small synthetic model so the
    job ends with a real, stored model (what is trained on is not this test's subject)."""

    def pipeline(
        request: TrainingRequest, *, dataset_dir: Path | None = None, **kwargs: Any
    ) -> TrainingOutcome:
        assert dataset_dir is not None, "a dataset job was given no dataset directory"
        assert dataset_dir.is_relative_to(kwargs["work_dir"])  # inside the job's own directory
        given.append({p.name: p.read_bytes() for p in sorted(dataset_dir.iterdir())})
        synthetic = replace(request, symbols=("SYNTH",), timeframes=("1h",), data=DataSpec())
        return run_training(synthetic, **kwargs)

    return pipeline


@contextlib.asynccontextmanager
async def rig(root: Path, *, static_node: bool = True) -> AsyncIterator[Rig]:
    given: list[dict[str, bytes]] = []
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=root / "work", upload_backoff_s=0.05),
        pipeline=recording_pipeline(given),
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            nodes=(trainer.address,) if static_node else (),
            state_dir=root / "state",
        )
    )
    channel = plumbing.create_channel(orchestrator.address)
    try:
        yield Rig(orchestrator, trainer, orchestrator_pb2_grpc.OrchestratorStub(channel), given)
    finally:
        await channel.close(None)
        await orchestrator.stop(0)
        await trainer.stop(0)


async def follow(stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, job_id: str) -> list[Any]:
    return [e async for e in stub.WatchJob(opb.WatchJobRequest(job_id=job_id))]


async def test_a_trainer_fetches_a_dataset_once_and_reuses_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        dataset = await r.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
        first = [e async for e in r.stub.Train(dataset_request())]
        assert first[-1].state == ppb.JOB_STATE_SUCCEEDED, first[-1].error.message
        assert first[-1].job_id and r.given == [{"GOOG.csv": GOOG}]
        label = f"goog@{dataset.sha256[:12]}"
        fetching = [e.message for e in first if e.message.startswith("Fetching dataset")]
        assert fetching == [
            f"Fetching dataset {label} from {r.orchestrator.address} (1 of 1 file(s), 0.1 MB)"
        ]
        cache = tmp_path / "work" / "datasets" / "blobs" / sha(GOOG)
        assert cache.read_bytes() == GOOG and r.fetched == 1

        # A second job, and a second dataset holding the same bytes: nothing is fetched again.
        await r.stub.UploadDataset(stream(upload("goog2", {"GOOG_1d.csv": GOOG})))
        second = [e async for e in r.stub.Train(dataset_request())]
        third = [e async for e in r.stub.Train(dataset_request("goog2"))]
        for events in (second, third):
            assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1].error.message
            assert not [e for e in events if e.message.startswith("Fetching dataset")]
            assert any("already on this node" in e.message for e in events)
        assert r.fetched == 1
        metric = "trainwire_trainer_dataset_files_fetched_total"
        assert r.trainer.metrics.registry.get_sample_value(metric) == 1
        assert r.given[1:] == [{"GOOG.csv": GOOG}, {"GOOG_1d.csv": GOOG}]
        for run in r.trainer.runner.runs():  # each job's clean-up follows its last event
            assert run.task is not None
            await run.task
        assert not list((tmp_path / "work" / "jobs").iterdir())  # job dirs (and links) gone
        assert cache.read_bytes() == GOOG  # the cache outlives the jobs


async def test_a_dataset_deleted_while_its_job_waits_fails_the_job_with_data_error(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, static_node=False) as r:
        await r.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
        job = await r.stub.SubmitJob(dataset_request())  # no node yet: it waits
        await r.stub.DeleteDataset(dpb.DeleteDatasetRequest(name="goog"))
        r.orchestrator.registry.add(r.trainer.address)
        events = await follow(r.stub, job.job_id)
        last = events[-1]
        assert last.state == ppb.JOB_STATE_FAILED
        assert last.error.code == "DATA_ERROR"
        assert "was deleted" in last.error.message and "goog@" in last.error.message
        assert r.given == []


async def test_a_trainer_sent_a_deleted_version_fails_the_job_saying_so(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        dataset = await r.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
        await r.stub.DeleteDataset(dpb.DeleteDatasetRequest(name="goog"))
        request = dataset_request()
        request.data.dataset_sha256 = dataset.sha256
        async with plumbing.create_channel(r.trainer.address) as channel:
            trainer = trainer_pb2_grpc.TrainerStub(channel)
            events = [
                e
                async for e in trainer.Train(
                    trainer_pb2.TrainerJob(
                        job_id="deleted-1",
                        request=request,
                        upload_target=r.orchestrator.address,
                        upload_token="t",
                    )
                )
            ]
        last = events[-1]
        assert last.state == ppb.JOB_STATE_FAILED
        assert last.error.code == "DATA_ERROR"
        assert f"goog@{dataset.sha256[:12]} was deleted" in last.error.message
        assert r.given == [] and r.fetched == 0


async def test_a_job_on_an_unknown_dataset_is_refused_at_submit(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await r.stub.SubmitJob(dataset_request("missing"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "missing" in (err.value.details() or "")


async def test_goog_daily_trains_from_an_uploaded_dataset_on_a_trainer_without_data(
    cluster: Cluster,
) -> None:
    """The real pipeline end to end: the trainer has no data directory, only the upload."""
    assert cluster.trainer.runner.datasets.files_fetched == 0
    dataset = await cluster.stub.UploadDataset(stream(upload("goog", {"GOOG.csv": GOOG})))
    request = dataset_request()
    request.strategy.labels.auto_threshold = True  # calibrated to daily GOOG swings
    first = [e async for e in cluster.stub.Train(request)]
    assert first[-1].state == ppb.JOB_STATE_SUCCEEDED, first[-1].error.message
    assert first[-1].result.model.name.startswith("default_fuzzy_mlp/GOOG_1d_v")
    data = first[-1].result.data  # the result names the exact version it trained on
    name, _, prefix = data.location.partition("@")
    assert (data.source, name) == ("dataset", "goog")
    assert prefix and dataset.sha256.startswith(prefix)
    assert [(s.file, s.rows) for s in data.series] == [("GOOG.csv", dataset.files[0].rows)]
    request.strategy.training.epochs = 1
    second = [e async for e in cluster.stub.Train(request)]
    assert second[-1].state == ppb.JOB_STATE_SUCCEEDED, second[-1].error.message
    assert cluster.trainer.runner.datasets.files_fetched == 1
