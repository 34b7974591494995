"""The SDK's types hold under ``mypy --strict``: a caller's code type-checks, and a misspelt
option or a wrong type is an error rather than a silently ignored keyword."""

from __future__ import annotations

from pathlib import Path

import mypy.api
import pytest

from shared.client import JobState

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
from shared.client import AsyncClient, Client, Job, JobEvent, JobState, data

def sync_use(tw: Client) -> bool:
    events: list[JobEvent] = list(tw.train(["SYNTH"], ["1h"], epochs=2, bars=1200, seed=1))
    job: Job = tw.submit(["EURUSD"], ["1h"], data=data.directory("fx"), timeout=5.0)
    tw.cancel(job.job_id, reason="x", timeout=1)
    listed: list[Job] = tw.jobs(states=[JobState.RUNNING], limit=5)
    return events[-1].state.terminal and tw.job(job.job_id).state.terminal and bool(listed)

async def async_use(tw: AsyncClient) -> bool:
    job = await tw.submit(["SYNTH"], ["1h"], label_threshold="auto", request_id="r1")
    async for event in tw.watch(job.job_id, after_seq=0):
        if event.state.terminal:
            break
    return (await tw.job(job.job_id, timeout=0.5)).state.terminal
"""


def check(tmp_path: Path, source: str) -> tuple[str, int]:
    snippet = tmp_path / "usage.py"
    snippet.write_text(source)
    out, err, status = mypy.api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(snippet),
        ]
    )
    return out + err, status


@pytest.mark.timeout(240)
def test_typed_usage_passes_and_wrong_keywords_are_errors(tmp_path: Path) -> None:
    bad = (
        GOOD
        + """
def wrong(tw: Client) -> None:
    tw.submit(["SYNTH"], ["1h"], epoch=2)
    tw.submit(["SYNTH"], ["1h"], epochs="2")
    tw.job("j", deadline=1)
"""
    )
    out, status = check(tmp_path, bad)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 3, out
    assert 'Unexpected keyword argument "epoch"' in errors[0]
    assert '"epochs"' in errors[1]
    assert 'Unexpected keyword argument "deadline"' in errors[2]
    # Everything above the wrong lines type-checked: the three errors are theirs alone.
    first_wrong = len(GOOD.splitlines()) + 1
    assert all(int(line.split(":")[1]) > first_wrong for line in errors), out


def test_job_state_terminal_from_the_sdk() -> None:
    assert {s for s in JobState if s.terminal} == {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
    }
