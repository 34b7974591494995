"""Prometheus /metrics: what an operator's dashboard reads, after real jobs."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.client import AsyncClient, JobState
from shared.device import select_device

pytestmark = pytest.mark.timeout(120)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_orchestrator_metrics_after_a_finished_and_a_cancelled_job(tmp_path: Path) -> None:
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "w", metrics_listen="127.0.0.1:0")
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            nodes=(trainer.address,),
            state_dir=tmp_path / "s",
            metrics_listen="127.0.0.1:0",
        )
    )
    try:
        async with AsyncClient(orchestrator.address) as tw:
            events = [e async for e in tw.train(["SYNTH"], ["1h"], epochs=1, bars=1200)]
            assert events[-1].state is JobState.SUCCEEDED
            job = await tw.submit(["SYNTH"], ["1h"], epochs=100_000, bars=1500)
            async for event in tw.watch(job.job_id):
                if event.state is JobState.RUNNING:
                    break
            await tw.cancel(job.job_id)
            rest = [e async for e in tw.watch(job.job_id)]
            assert rest[-1].state is JobState.CANCELLED
        assert orchestrator.metrics_server is not None and trainer.metrics_server is not None
        m = await asyncio.to_thread(scrape, orchestrator.metrics_server.port)
        t = await asyncio.to_thread(scrape, trainer.metrics_server.port)
    finally:
        await orchestrator.stop(0)
        await trainer.stop(0)

    # Labelled with the device the trainer picked on this machine (CUDA > MPS > CPU): the
    # orchestrator labels a node with the kind, the trainer its jobs with the torch device.
    best = select_device("")
    assert m[("trainwire_jobs", (("state", "succeeded"),))] == 1
    assert m[("trainwire_jobs", (("state", "cancelled"),))] == 1
    assert m[("trainwire_jobs", (("state", "running"),))] == 0
    assert m[("trainwire_events_total", ())] >= len(events)
    assert m[("trainwire_queue_length", ())] == 0
    assert m[("trainwire_node_up", (("device", best.kind), ("node", trainer.address)))] == 1
    assert m[("trainwire_cancel_latency_seconds_count", ())] == 1
    assert 0 < m[("trainwire_cancel_latency_seconds_sum", ())] < 5
    assert m[("trainwire_upload_bytes_total", ())] > 1000
    assert m[("trainwire_upload_duration_seconds_count", ())] == 1

    assert t[("trainwire_trainer_slots", ())] == 1
    assert t[("trainwire_trainer_jobs_running", (("device", best.torch_device),))] == 0
    assert t[("trainwire_trainer_draining", ())] == 0
    assert t[("trainwire_trainer_events_total", ())] > 0
    assert t[("trainwire_trainer_cancel_latency_seconds_count", ())] == 1
