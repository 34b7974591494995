"""The client SDK against real servers: five lines to train, typed results and errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import backtesting  # type: ignore[import-untyped]
import pytest

from shared.client import (
    AsyncClient,
    Client,
    DatasetInfo,
    InvalidArgumentError,
    JobEvent,
    JobState,
    NotFoundError,
    UnavailableError,
    data,
)
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(120)
STRATEGY = Path(__file__).resolve().parents[2] / "strategies" / "rsi_mean_reversion.yaml"


async def test_async_client_trains_follows_lists_and_downloads(
    cluster: Cluster, tmp_path: Path
) -> None:
    async with AsyncClient(cluster.orchestrator.address) as tw:
        events = [e async for e in tw.train(["SYNTH"], ["1h"], epochs=1, bars=1200)]
        last = events[-1]
        assert isinstance(last, JobEvent) and last.state is JobState.SUCCEEDED
        assert last.result is not None and last.result.model is not None
        job = await tw.job(last.job_id)
        assert job.state is JobState.SUCCEEDED and job.last_seq == last.seq
        assert [j.job_id for j in await tw.jobs()] == [last.job_id]
        models = await tw.models()
        assert [m.name for m in models] == [last.result.model.name]
        info = await tw.model(last.result.model.name)
        assert info.feature_names and info.metadata["strategy_name"] == "default_fuzzy_mlp"
        path = await tw.download(last.result.model.name, tmp_path / "dl")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == last.result.model.sha256
        # metadata.json beside the weights, both readable by the services that load them, and
        # nothing else left in the directory (no temp files).
        assert path.parent == tmp_path / "dl" / last.result.model.name
        assert sorted(p.name for p in path.parent.iterdir()) == [
            "metadata.json",
            "model.safetensors",
        ]
        metadata = json.loads((path.parent / "metadata.json").read_text())
        assert metadata == info.metadata and metadata["feature_names"] == list(info.feature_names)
        assert {stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()} == {0o644}
        assert (await tw.nodes())[0].address == cluster.trainer.address


async def test_sync_client_with_a_strategy_file_and_typed_errors(cluster: Cluster) -> None:
    def run() -> tuple[list[JobEvent], InvalidArgumentError, NotFoundError]:
        with Client(cluster.orchestrator.address) as tw:
            events = list(tw.train(strategy_file=STRATEGY, epochs=1, bars=1200))
            with pytest.raises(InvalidArgumentError) as bad:
                tw.submit([], ["1h"])
            with pytest.raises(NotFoundError) as missing:
                tw.job("nope")
        return events, bad.value, missing.value

    events, bad, missing = await asyncio.to_thread(run)
    assert events[-1].state is JobState.SUCCEEDED
    assert events[-1].result is not None and events[-1].result.model is not None
    assert events[-1].result.model.strategy == "rsi_mean_reversion"
    assert bad.field == "symbols" and bad.code == "INVALID_ARGUMENT"
    assert "nope" in missing.message and missing.code == "NOT_FOUND"


async def test_watch_resumes_and_cancel_reports_cancelled(cluster: Cluster) -> None:
    async with AsyncClient(cluster.orchestrator.address) as tw:
        job = await tw.submit(["SYNTH"], ["1h"], epochs=10_000, bars=1500)
        first: list[JobEvent] = []
        async for event in tw.watch(job.job_id):
            first.append(event)
            if event.state is JobState.RUNNING:
                break
        await tw.cancel(job.job_id, reason="changed my mind")
        rest = [e async for e in tw.watch(job.job_id, after_seq=first[-1].seq)]
    assert rest[0].seq == first[-1].seq + 1
    assert rest[-1].state is JobState.CANCELLED


async def test_an_unreachable_orchestrator_is_an_unavailable_error() -> None:
    async with AsyncClient("127.0.0.1:1") as tw:
        with pytest.raises(UnavailableError) as err:
            await tw.nodes()
    assert "127.0.0.1:1" in err.value.message


async def test_datasets_upload_list_train_delete_through_the_sdk(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A file on this machine, uploaded, trains on a trainer that has no data of its own."""
    goog = Path(backtesting.__file__).parent / "test" / "GOOG.csv"

    def run() -> tuple[DatasetInfo, list[DatasetInfo], DatasetInfo, JobEvent, NotFoundError]:
        with Client(cluster.orchestrator.address) as tw:
            stored = tw.upload_dataset([goog], name="goog")
            listed = tw.list_datasets()
            shown = tw.get_dataset(f"goog@{stored.sha256}")
            *_, last = tw.train(
                ["GOOG"], ["1d"], data=data.dataset("goog"), epochs=2, label_threshold="auto"
            )
            tw.delete_dataset("goog")
            with pytest.raises(NotFoundError) as gone:
                tw.get_dataset("goog")
        return stored, listed, shown, last, gone.value

    stored, listed, shown, last, gone = await asyncio.to_thread(run)
    raw = goog.read_bytes()
    assert isinstance(stored, DatasetInfo) and stored.name == "goog"
    [file] = stored.files
    assert (file.filename, file.symbol, file.timeframe) == ("GOOG.csv", "GOOG", "1d")
    assert file.sha256 == hashlib.sha256(raw).hexdigest() and file.size_bytes == len(raw)
    assert file.rows == 2148
    assert [d.ref for d in listed] == [stored.ref] and shown == stored
    assert last.state is JobState.SUCCEEDED, last.error
    assert last.result is not None and last.result.data is not None
    assert last.result.data.source == "dataset"
    assert last.result.data.location.startswith(f"goog@{stored.sha256[:8]}")
    assert last.result.assessment is not None and last.result.assessment.baseline_class
    assert "goog" in gone.message


async def test_async_upload_sends_the_same_files(cluster: Cluster, tmp_path: Path) -> None:
    folder = Path(backtesting.__file__).parent / "test"
    async with AsyncClient(cluster.orchestrator.address) as tw:
        stored = await tw.upload_dataset([folder / "EURUSD.csv", folder / "GOOG.csv"])
        assert stored.name == "EURUSD"  # the first file's stem when no name is given
        assert await tw.get_dataset("EURUSD") == stored
        with pytest.raises(ValueError, match="no such file"):
            await tw.upload_dataset([tmp_path / "missing.csv"], name="x")
        assert [d.name for d in await tw.list_datasets()] == ["EURUSD"]
    assert {f.filename: f.rows for f in stored.files} == {"EURUSD.csv": 5000, "GOOG.csv": 2148}
