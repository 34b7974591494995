"""The trainer's path guard: a path built from a job id (or read from a spool note) is used only
if, with every symlink resolved, it lies inside the directory it belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.trainer.jobs import JobRunner, JobSpec, OutsideWorkDirError, resolve_inside
from shared import errors
from shared.spec import TrainingRequest, default_strategy


def _escape(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "work" / "jobs"
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (root / "evil").symlink_to(outside, target_is_directory=True)
    return root, outside


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = _escape(tmp_path)
    with pytest.raises(OutsideWorkDirError, match="outside"):
        resolve_inside(root, "evil")
    with pytest.raises(OutsideWorkDirError):
        resolve_inside(root, "evil/precious.txt")
    assert (outside / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("path", ["..", "../x", "/etc/passwd", "", ".", "a/../.."])
def test_paths_that_leave_the_root_or_name_it_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(OutsideWorkDirError):
        resolve_inside(tmp_path, path)


def test_paths_inside_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert resolve_inside(tmp_path, "a/b") == tmp_path.resolve() / "a" / "b"
    assert resolve_inside(tmp_path, "alias/m") == tmp_path.resolve() / "real" / "m"
    assert resolve_inside(tmp_path, str(tmp_path / "x")) == tmp_path.resolve() / "x"


def _pipeline(*_: Any, **__: Any) -> Any:
    raise AssertionError("a job whose directory escapes must never run")


async def test_a_job_whose_directory_is_a_symlink_out_is_refused(tmp_path: Path) -> None:
    """A valid id whose directory was replaced by a link (not something the trainer makes)."""
    runner = JobRunner(work_dir=tmp_path / "work", slots=1, node="n", pipeline=_pipeline)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (tmp_path / "work" / "jobs" / "evil").symlink_to(outside, target_is_directory=True)
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    spec = JobSpec(job_id="evil", request=request, upload_target="127.0.0.1:9", upload_token="t")
    with pytest.raises(errors.FailedPreconditionError, match="outside"):
        runner.start(spec)
    with pytest.raises(errors.FailedPreconditionError):
        await runner.resend("evil", "127.0.0.1:9", "t")
    assert runner.runs() == []
    assert (outside / "precious.txt").read_text() == "keep me"
    await runner.shutdown(0)
