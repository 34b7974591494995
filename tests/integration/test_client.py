"""The client SDK against real servers: five lines to train, typed results and errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path

import pytest

from shared.client import (
    AsyncClient,
    Client,
    InvalidArgumentError,
    JobEvent,
    JobState,
    NotFoundError,
    UnavailableError,
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
