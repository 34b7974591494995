"""The trainer treats a job id as a name, never as a path: every RPC that takes one refuses
anything but a plain id before any file is touched, and a killed trainer's leftovers (a model
with no upload note, which can never be re-sent) are gone when it starts again."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.trainer.config import TrainerConfig
from services.trainer.jobs import SPOOL_NOTE
from services.trainer.server import TrainerServer
from services.trainer.server import create_server as create_trainer
from shared.pipeline.run import TrainingOutcome
from shared.rpc import plumbing
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc
from shared.spec import TrainingRequest

pytestmark = pytest.mark.timeout(120)


def field_violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, err
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def _fake_pipeline(calls: list[Path]) -> Callable[..., TrainingOutcome]:
    """Writes a small model into the job dir it is given, like the real pipeline does."""

    def pipeline(request: TrainingRequest, *, work_dir: Path, **_: Any) -> TrainingOutcome:
        calls.append(work_dir)
        artifact = work_dir / "model.safetensors"
        artifact.write_bytes(b"model")
        return TrainingOutcome(
            artifact_path=artifact,
            sha256=hashlib.sha256(b"model").hexdigest(),
            size_bytes=5,
            device="cpu",
            train_metrics={},
            test_metrics={},
            feature_importance={},
            feature_names=(),
            samples=0,
        )

    return pipeline


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class Victims:
    """Directories outside the trainer's work dir that a path-like job id would reach."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work_dir = root / "srv" / "work"
        self.work_dir.mkdir(parents=True)
        self.sibling = root / "srv" / "victim"  # work/jobs/../../victim
        self.absolute = root / "abs-victim"
        for folder in (self.sibling, self.absolute):
            folder.mkdir()
            (folder / "precious.txt").write_text("keep me")

    def job_ids(self) -> list[str]:
        return ["../../victim", str(self.absolute), "a/b", "x\n", "x" * 65, "", "..", ".hidden"]

    def untouched(self) -> bool:
        return all(
            (folder / "precious.txt").read_text() == "keep me" and _tree(folder) == {"precious.txt"}
            for folder in (self.sibling, self.absolute)
        )

    def outside_work_dir(self) -> set[str]:
        return {p for p in _tree(self.root) if not p.startswith("srv/work")}


@pytest.fixture
async def trainer(tmp_path: Path) -> AsyncIterator[tuple[TrainerServer, Victims, list[Path]]]:
    victims = Victims(tmp_path)
    calls: list[Path] = []
    server = await create_trainer(
        TrainerConfig(
            listen="127.0.0.1:0",
            work_dir=victims.work_dir,
            upload_attempts=1,
            upload_backoff_s=0.05,
            upload_window_s=0.3,
        ),
        pipeline=_fake_pipeline(calls),
    )
    try:
        yield server, victims, calls
    finally:
        await server.stop(0)


def _train_request() -> spb.TrainRequest:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 1
    request.data.bars = 1200
    return request


async def _train(stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str) -> None:
    job = trainer_pb2.TrainerJob(
        job_id=job_id, request=_train_request(), upload_target="127.0.0.1:9", upload_token="t"
    )
    async for _ in stub.Train(job):
        pass


async def _attach(stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str) -> None:
    async for _ in stub.Attach(trainer_pb2.AttachRequest(job_id=job_id)):
        pass


async def _cancel(stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str) -> None:
    await stub.Cancel(trainer_pb2.CancelRequest(job_id=job_id, reason="probe"))


async def _resend(stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str) -> None:
    await stub.ResendModel(
        trainer_pb2.ResendModelRequest(job_id=job_id, upload_target="127.0.0.1:9", upload_token="t")
    )


Call = Callable[["trainer_pb2_grpc.TrainerAsyncStub", str], Awaitable[None]]


@pytest.mark.parametrize(
    "call", [_train, _attach, _cancel, _resend], ids=["Train", "Attach", "Cancel", "ResendModel"]
)
async def test_a_path_like_job_id_is_refused_and_nothing_outside_the_work_dir_changes(
    trainer: tuple[TrainerServer, Victims, list[Path]], call: Call
) -> None:
    server, victims, calls = trainer
    # A planted spool note outside the work dir, for ResendModel to find if it followed the id.
    (victims.sibling / SPOOL_NOTE).write_text(
        json.dumps({"artifact": str(victims.sibling / "precious.txt"), "sha256": "0" * 64})
    )
    before = victims.outside_work_dir()
    async with plumbing.create_channel(server.address) as channel:
        stub = trainer_pb2_grpc.TrainerStub(channel)
        for job_id in victims.job_ids():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(stub, job_id)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (job_id, err.value)
            assert field_violations(err.value) == ["job_id"], job_id
        # The trainer still works for a plain id.
        await _train(stub, "plain-id_1")
    assert calls == [victims.work_dir / "jobs" / "plain-id_1"]
    assert victims.outside_work_dir() == before
    assert (victims.sibling / "precious.txt").read_text() == "keep me"
    assert (victims.absolute / "precious.txt").read_text() == "keep me"
    assert not (victims.work_dir / "jobs" / "a").exists()


async def test_the_work_dir_is_private(tmp_path: Path) -> None:
    work = tmp_path / "fresh" / "work"
    server = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=work), pipeline=_fake_pipeline([])
    )
    try:
        for folder in (work, work / "jobs"):
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    finally:
        await server.stop(0)


def _spool(jobs: Path, job_id: str, size: int, *, note: bool) -> Path:
    folder = jobs / job_id
    folder.mkdir(parents=True)
    artifact = folder / "model.safetensors"
    with artifact.open("wb") as f:  # sparse: big on paper, cheap on the disk
        f.truncate(size)
    if note:
        (folder / SPOOL_NOTE).write_text(
            json.dumps(
                {
                    "job_id": job_id,
                    "artifact": str(artifact),
                    "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
                    "size_bytes": size,
                    "upload_target": "127.0.0.1:9",
                }
            )
        )
    return folder


async def test_a_restarted_trainer_drops_models_that_have_no_upload_note(tmp_path: Path) -> None:
    work = tmp_path / "work"
    jobs = work / "jobs"
    orphan = _spool(jobs, "killed-mid-upload", 300 * 1024 * 1024, note=False)
    kept = _spool(jobs, "upload-failed", 1024, note=True)
    bad_note = _spool(jobs, "unreadable-note", 1024, note=False)
    (bad_note / SPOOL_NOTE).write_text("{not json")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.safetensors").write_text("not the trainer's")
    (jobs / "link").symlink_to(outside, target_is_directory=True)
    escaping = _spool(jobs, "escaping-note", 1024, note=True)
    note = json.loads((escaping / SPOOL_NOTE).read_text())
    (escaping / SPOOL_NOTE).write_text(
        json.dumps({**note, "artifact": str(outside / "model.safetensors")})
    )

    server = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=work), pipeline=_fake_pipeline([])
    )
    try:
        assert sorted(p.name for p in jobs.iterdir()) == [kept.name]
        assert (outside / "model.safetensors").read_text() == "not the trainer's"
        assert not orphan.exists()
    finally:
        await server.stop(0)


async def test_resend_refuses_a_note_whose_artifact_lies_outside_the_job_dir(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    server = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=work), pipeline=_fake_pipeline([])
    )
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"secret")
    try:
        # Planted after start-up (start-up would drop it), as a running node could meet it.
        spool = _spool(work / "jobs", "planted", 16, note=True)
        note = json.loads((spool / SPOOL_NOTE).read_text())
        (spool / SPOOL_NOTE).write_text(
            json.dumps({**note, "artifact": str(secret), "size_bytes": 6})
        )
        async with plumbing.create_channel(server.address) as channel:
            stub = trainer_pb2_grpc.TrainerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _resend(stub, "planted")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value
        assert "no spooled model" in (err.value.details() or "")
        assert secret.read_bytes() == b"secret"
    finally:
        await server.stop(0)
