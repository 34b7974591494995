"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A real orchestrator (``--http-listen``) and trainer run as processes; the browser watches a
training job live, survives a reload mid-run (the page resumes its event stream after the last
seq it had), cancels a running job with the Cancel button, and follows a short job to its
stored model. A load test runs an orchestrator in this process to hold 1,000 jobs and feed one
job 100 events/s, and measures how far the page lags behind the last seq.

Screenshots (1280×800 and 390×844) go to ``$TRAINWIRE_TEST_ARTIFACTS`` when it is set, else to
pytest's temporary directory; their paths are printed.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer, create_server
from shared.client import Client
from shared.jobs import EventKind, JobError, JobEvent, JobState
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as opb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import TrainingRequest, default_strategy
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
T = TypeVar("T")
README = Path(__file__).resolve().parents[2] / "README.md"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


def chromium_path() -> str:
    found = os.environ.get("TRAINWIRE_CHROMIUM") or shutil.which("chromium")
    if found is None:
        pytest.skip("chromium not found: install Debian's chromium package (.ci/run does)")
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TRAINWIRE_TEST_ARTIFACTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Services:
    orchestrator: str
    url: str


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("dashboard")
    orch, trainer, http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}", free_port()
    with (
        service(
            ["trainer", "--listen", trainer, "--work-dir", str(tmp / "work")], tmp / "trainer.log"
        ) as tproc,
        service(
            [
                "orchestrator",
                "--listen",
                orch,
                "--node",
                trainer,
                "--state-dir",
                str(tmp / "state"),
                "--http-listen",
                f"127.0.0.1:{http}",
            ],
            tmp / "orchestrator.log",
        ) as oproc,
    ):
        wait_serving(trainer, tproc)
        wait_serving(orch, oproc)
        yield Services(orch, f"http://127.0.0.1:{http}/")


def _page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Page:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _data(page: Page) -> dict[str, str]:
    found: dict[str, str] = page.evaluate("() => ({...document.getElementById('main').dataset})")
    return found


def _wait_data(page: Page, condition: str, timeout_s: float = 60) -> dict[str, str]:
    """Wait until ``condition`` (JS over ``d``, the main element's dataset) holds."""
    page.wait_for_function(
        f"() => {{ const d = document.getElementById('main').dataset; return {condition}; }}",
        timeout=timeout_s * 1000,
    )
    return _data(page)


def _screenshots(page: Page, artifacts: Path, name: str) -> list[Path]:
    shots = []
    for label, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
        page.set_viewport_size(viewport)  # type: ignore[arg-type]
        # Readable at this width: nothing wider than the viewport, no sideways scrolling.
        wide = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert wide <= 1, f"{name} at {label}: the page is {wide} px wider than the screen"
        path = artifacts / f"{name}-{label}.png"
        page.screenshot(path=str(path))
        shots.append(path)
        print(f"screenshot: {path}")
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    return shots


def _submit_endless(address: str) -> opb.Job:
    """A training job that runs until cancelled: 400 epochs, early stopping off."""
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 400
    request.strategy.training.early_stopping_patience = 0
    request.data.bars = 3000
    with plumbing.create_sync_channel(address) as channel:
        job: opb.Job = orchestrator_pb2_grpc.OrchestratorStub(channel).SubmitJob(
            request, timeout=30
        )
    return job


def test_a_running_job_updates_live_survives_a_reload_and_is_cancelled_by_the_button(
    services: Services, browser: Browser, artifacts: Path
) -> None:
    job = _submit_endless(services.orchestrator)
    page = _page(browser)
    page.goto(f"{services.url}#/jobs")
    row = page.locator(f"tr.job-row[data-job-id='{job.job_id}']")
    row.wait_for(timeout=30_000)
    row.click()
    first = _wait_data(page, "d.state === 'RUNNING' && Number(d.epochPoints || 0) >= 2")
    later = _wait_data(
        page,
        f"Number(d.percentage) > {float(first['percentage'])} && "
        f"Number(d.lastSeq) > {int(first['lastSeq'])}",
    )
    assert page.locator("#steps li.current").count() == 1  # the step breadcrumb
    assert page.locator("#loss-chart polyline").count() == 2  # train and validation curves
    assert page.locator("#log .line").count() > 5
    assert "/" in page.locator("#training .bar-text").first.inner_text()  # epoch i/n
    _screenshots(page, artifacts, "job-running")

    page.reload()
    resumed = _wait_data(page, f"Number(d.lastSeq) > {int(later['lastSeq'])} + 3")
    assert int(resumed["resumedFrom"]) >= int(later["lastSeq"])  # not replayed from seq 0
    assert float(resumed["percentage"]) >= float(later["percentage"])
    # Every event after the resume point arrived once: no gap, no duplicate.
    assert int(resumed["lastSeq"]) == int(resumed["resumedFrom"]) + int(resumed["applied"])
    assert resumed["duplicates"] == "0"

    page.locator("#cancel").click()
    done = _wait_data(page, "d.state === 'CANCELLED'", timeout_s=30)
    assert page.locator("#error-message").inner_text().startswith("CANCELLED")
    assert page.locator("#cancel").is_hidden()
    assert int(done["lastSeq"]) == int(done["resumedFrom"]) + int(done["applied"])
    page.goto(f"{services.url}#/jobs?state=CANCELLED")
    page.locator(f"tr.job-row[data-job-id='{job.job_id}'][data-state='CANCELLED']").wait_for()
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_short_job_is_followed_to_its_model_and_the_lists_show_it(
    services: Services, browser: Browser, artifacts: Path
) -> None:
    with Client(services.orchestrator) as client:
        job = client.submit(["SYNTH"], ["1h"], epochs=4, bars=2000)
    page = _page(browser)
    page.goto(f"{services.url}#/jobs/{job.job_id}")
    done = _wait_data(page, "d.state === 'SUCCEEDED'", timeout_s=120)
    assert float(done["percentage"]) == 100.0 and done["epochPoints"] == "4"
    assert page.locator("#result #model-name").inner_text().startswith("Model default_fuzzy_mlp/")
    assert page.locator("#steps li.done").count() == page.locator("#steps li").count() > 3
    _screenshots(page, artifacts, "job-succeeded")

    page.goto(f"{services.url}#/jobs")
    page.locator(f"tr.job-row[data-job-id='{job.job_id}'][data-state='SUCCEEDED']").wait_for()
    assert page.locator("#jobs-table td.col-device").first.inner_text() != "—"
    _screenshots(page, artifacts, "jobs")
    page.goto(f"{services.url}#/nodes")
    page.locator("tr.node-row .health-serving").wait_for()
    page.goto(f"{services.url}#/models")
    model = page.locator("tr.item-row").first
    model.wait_for()
    with page.expect_download() as download:
        model.locator("button.download").click()
    assert download.value.suggested_filename.endswith(".safetensors")
    model.click()
    page.locator("tr.details table.kv").first.wait_for()
    _screenshots(page, artifacts, "models")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_real_optimization_job_shows_its_trials_live(
    services: Services, browser: Browser, artifacts: Path
) -> None:
    with Client(services.orchestrator) as client:
        job = client.submit_optimization(
            "sma_crossover",
            ["SYNTH"],
            ["1h"],
            space={"fast": (2, 40, 1), "slow": (41, 200, 1)},
            constraints=["fast < slow"],
            sampler="random",
            trials=200,
            seed=3,
            bars=60_000,
        )
    page = _page(browser)
    page.goto(f"{services.url}#/jobs/{job.job_id}")
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        data = _data(page)
        if data.get("state") == "RUNNING" and data.get("iteration"):
            seen.add(int(data["iteration"]))
        if data.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.1)
    assert data["state"] == "SUCCEEDED", page.locator("#job-error, #result").all_inner_texts()
    assert len(seen) >= 2, f"trials seen live: {sorted(seen)}"  # the count rose while running
    assert page.locator("#iteration").inner_text() == "200/200"
    assert page.locator(".badge.kind").inner_text() == "optimize"
    assert page.locator("#best-score").inner_text().split()[0] not in ("", "—")
    assert {"fast", "slow"} <= set(page.locator("#best-params td").all_inner_texts())
    assert page.locator("#trials-chart .dots circle").count() == 200
    assert page.locator("#candles").is_visible()
    assert "sma_crossover" in page.locator("#best-result").inner_text()
    _screenshots(page, artifacts, "optimization-real")

    page.goto(f"{services.url}#/configurations")
    stored = page.locator("tr.item-row[data-name^='sma_crossover/SYNTH_1h_v']").first
    stored.wait_for()
    with page.expect_download() as download:
        stored.locator("button.download").click()
    assert download.value.suggested_filename.endswith(".json")
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["strategy"] == "sma_crossover"
    stored.click()
    assert '"strategy": "sma_crossover"' in page.locator("tr.details pre.json").first.inner_text()
    _screenshots(page, artifacts, "configurations")
    assert page.errors == []  # type: ignore[attr-defined]


def _optimization_stream(job_id: str, trials: int) -> tuple[dict[str, Any], str]:
    """An optimization job's snapshot and event stream as the API serves them (proto JSON,
    built from the messages themselves), for the page to render."""
    from google.protobuf import json_format

    from shared.rpc.v1 import progress_pb2 as ppb

    frames, seq = [], 0

    def frame(event: ppb.ProgressEvent) -> None:
        nonlocal seq
        seq += 1
        event.job_id, event.seq = job_id, seq
        frames.append(f"id: {seq}\ndata: {json.dumps(json_format.MessageToDict(event))}\n\n")

    frame(ppb.ProgressEvent(state=ppb.JOB_STATE_QUEUED, kind=ppb.EVENT_KIND_LIFECYCLE))
    best = -1.0
    for i in range(1, trials + 1):
        score = ((i * 7) % 11) / 10
        best = max(best, score)
        for candle in (250, 500, 1000):
            event = ppb.ProgressEvent(
                state=ppb.JOB_STATE_RUNNING,
                kind=ppb.EVENT_KIND_DETAIL,
                percentage=25 + 50 * (i - 1) / trials,
                message=f"Trial {i}/{trials} · candle {candle}/1000",
                step_index=2,
                step_total=4,
                step_name="Optimizing",
                stage="trades",
            )
            event.items.CopyFrom(ppb.ItemCounter(name="candles", current=candle, total=1000))
            frame(event)
        event = ppb.ProgressEvent(
            state=ppb.JOB_STATE_RUNNING,
            kind=ppb.EVENT_KIND_STEP,
            percentage=25 + 50 * i / trials,
            message=f"Trial {i}/{trials}: score {score:.2f}, best {best:.2f}",
            step_index=2,
            step_total=4,
            step_name="Optimizing",
        )
        event.optimizer.CopyFrom(
            ppb.OptimizerProgress(
                iteration=i,
                total_iterations=trials,
                current_score=score,
                best_score=best,
                best_params={"fast": str(5 + i % 3), "slow": "30"},
                objective="Sharpe Ratio",
            )
        )
        frame(event)
    final = ppb.ProgressEvent(
        state=ppb.JOB_STATE_SUCCEEDED,
        kind=ppb.EVENT_KIND_LIFECYCLE,
        percentage=100,
        message="Succeeded: best Sharpe Ratio 1.00",
    )
    final.optimize_result.CopyFrom(
        ppb.OptimizeResult(
            strategy="sma_cross", best_params={"fast": "7", "slow": "30"}, best_score=best
        )
    )
    frame(final)
    job = ppb.Job(
        job_id=job_id, state=ppb.JOB_STATE_SUCCEEDED, kind=ppb.JOB_KIND_OPTIMIZE, last_seq=seq
    )
    return json_format.MessageToDict(job), "".join(frames)


def test_an_optimization_job_shows_trials_best_score_params_and_candles(
    services: Services, browser: Browser, artifacts: Path
) -> None:
    """The optimizer dashboard, from the fields the API sends for optimization jobs (the page
    is served by the real orchestrator; this one job's replies are given to the browser)."""
    job_id = "0a7e0a7e0a7e0a7e"
    job, stream = _optimization_stream(job_id, 20)
    page = _page(browser)
    base = f"{services.url}api/v1/jobs/{job_id}"
    page.route(base, lambda route: route.fulfill(json=job))
    page.route(
        f"{base}/events",
        lambda route: route.fulfill(body=stream, headers={"Content-Type": "text/event-stream"}),
    )
    page.goto(f"{services.url}#/jobs/{job_id}")
    _wait_data(page, "d.state === 'SUCCEEDED'")
    assert page.locator(".badge.kind").inner_text() == "optimize"
    assert page.locator("#iteration").inner_text() == "20/20"
    assert page.locator("#best-score").inner_text() == "1 (Sharpe Ratio)"
    assert page.locator("#best-params td").all_inner_texts()[:2] == ["fast", "7"]
    assert page.locator("#trials-chart .dots circle").count() == 20
    assert page.locator("#candles .bar-text").inner_text() == "1,000/1,000"
    assert page.locator("#stage").inner_text() == "trades"
    assert "sma_cross" in page.locator("#best-result").inner_text()
    _screenshots(page, artifacts, "optimization")
    assert page.errors == []  # type: ignore[attr-defined]


def readme_curl_lines() -> list[str]:
    """The curl commands of the README's "HTTP API and dashboard" section, in order."""
    section = README.read_text().split("## HTTP API and dashboard\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def test_the_readme_curl_examples_run_as_shown(services: Services, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not found: install Debian's curl package")
    with Client(services.orchestrator) as client:
        last = list(client.train(["SYNTH"], ["1h"], epochs=2, bars=1200))[-1]
    assert last.result is not None and last.result.model is not None
    model = last.result.model
    lines = readme_curl_lines()
    assert len(lines) >= 10
    address = services.url.removeprefix("http://").rstrip("/")
    for line in lines:
        command = (
            line.replace("127.0.0.1:8080", address)
            .replace("<id>", last.job_id)
            .replace("<model>", model.name)
        )
        done = subprocess.run(
            ["bash", "-c", f"{command} -w '\\n%{{http_code}}'"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status == "200", (line, done.stdout[-500:], done.stderr)
        if " -o " in line:
            saved = (tmp_path / "model.safetensors").read_bytes()
            assert hashlib.sha256(saved).hexdigest() == model.sha256
        elif "/events" in line:
            ids = [int(x[4:]) for x in body.splitlines() if x.startswith("id: ")]
            first = 11 if "Last-Event-ID: 10" in line else 1
            assert ids == list(range(first, first + len(ids))) and len(ids) > 1, line
            assert '"state":"JOB_STATE_SUCCEEDED"' in body.strip().splitlines()[-1], line
        else:
            document = json.loads(body)
            assert "code" not in document, (line, document)
    print(f"ran {len(lines)} README curl examples")


def test_sigterm_ends_open_event_streams_at_once(tmp_path: Path) -> None:
    """A stopping orchestrator process holds no SSE stream open: each gets its last frame
    (``event: interrupted``, with the seq to resume after) and the process exits promptly."""
    orch, http_port = f"127.0.0.1:{free_port()}", free_port()
    args = ["orchestrator", "--listen", orch, "--state-dir", str(tmp_path / "state")]
    with service([*args, "--http-listen", f"127.0.0.1:{http_port}"], tmp_path / "o.log") as proc:
        wait_serving(orch, proc)
        with Client(orch) as client:
            job = client.submit(["SYNTH"], ["1h"], epochs=1)  # no node: it stays QUEUED
        streams = []
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
            connection.request("GET", f"/api/v1/jobs/{job.job_id}/events")
            response = connection.getresponse()
            assert response.status == 200
            assert response.readline() == b"retry: 2000\n"
            streams.append(response)
        for response in streams:
            while response.readline() != b"id: 1\n":
                pass
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        tails = [response.read().decode() for response in streams]  # until each ends
        ended_s = time.monotonic() - started
        proc.wait(timeout=20)
        exited_s = time.monotonic() - started
    for tail in tails:
        assert "event: interrupted\n" in tail and '"code":"UNAVAILABLE"' in tail, tail
        ids = [int(line[4:]) for line in tail.splitlines() if line.startswith("id: ")]
        last = max(ids, default=1)  # the stream was read up to seq 1 before the signal
        assert f'"lastEventId":"{last}"' in tail and f"after_seq {last} " in tail, tail
    assert proc.returncode == 0
    assert ended_s < 3.0 and exited_s < 4.5, (ended_s, exited_s)  # the grace is 5 s


# -- load: 1,000 jobs, one of them at 100 events/s ---------------------------------------------


class InProcess:
    """An orchestrator on its own event loop in a thread, so the test can feed its job book."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.seq = 0

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


REQUEST = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())


def _batch(i: int, total: int) -> JobEvent:
    epoch, batch = divmod(i, 100)
    return JobEvent(
        job_id="",
        seq=0,
        time=time.time(),
        state=JobState.RUNNING,
        kind=EventKind.EPOCH if batch == 99 else EventKind.BATCH,
        percentage=100.0 * i / total,
        message=f"Epoch {epoch + 1}/100 · Batch {batch + 1}/100",
        step_index=9,
        step_total=12,
        step_name="Training model",
        epoch=epoch + 1,
        total_epochs=100,
        batch=batch + 1,
        total_batches=100,
        metrics={"loss": 1.0 / (i + 1), "accuracy": 0.4, "val_loss": 1.1 / (i + 1)},
        eta_seconds=(total - i) / 100,
        node="127.0.0.1:1",
        device="cpu",
    )


def _cancelled() -> JobEvent:
    return JobEvent(
        job_id="",
        seq=0,
        time=time.time(),
        state=JobState.CANCELLED,
        kind=EventKind.LIFECYCLE,
        message="Cancelled: load test over",
        error=JobError(code="CANCELLED", message="load test over", where="orchestrator"),
    )


async def _populate(orch: OrchestratorServer, jobs: int) -> str:
    book = orch.book
    ids = [book.create(REQUEST)[0].job_id for _ in range(jobs)]
    for job_id in ids[: jobs - 10]:
        book.append(job_id, _batch(1, 2))
        book.append(job_id, _cancelled())
    return ids[-1]


async def _produce(orch: OrchestratorServer, harness: InProcess, job_id: str, n: int) -> None:
    start = asyncio.get_running_loop().time()
    for i in range(n):
        event = orch.book.append(job_id, _batch(i, n))
        harness.seq = event.seq
        await asyncio.sleep(max(0.0, start + (i + 1) / 100 - asyncio.get_running_loop().time()))
    harness.seq = orch.book.append(job_id, _cancelled()).seq


def test_a_thousand_jobs_and_a_hundred_events_per_second_keep_the_page_current(
    browser: Browser, artifacts: Path, tmp_path: Path
) -> None:
    harness = InProcess()
    orch = harness.call(
        create_server(
            OrchestratorConfig(
                listen="127.0.0.1:0",
                http_listen="127.0.0.1:0",
                state_dir=tmp_path / "state",
                store="memory:",
            )
        )
    )
    try:
        assert orch.http is not None
        hot = harness.call(_populate(orch, 1000))
        table = _page(browser)
        table.add_init_script(LONG_TASKS)
        started = time.monotonic()
        table.goto(f"{orch.http.url}#/jobs")
        table.wait_for_function(
            "() => document.querySelector('#jobs-table tbody').dataset.count === '1000'",
            timeout=60_000,
        )
        table_ready_s = time.monotonic() - started
        first_render_ms = max(table.evaluate("window.__longTasks"), default=0.0)
        table.evaluate("window.__longTasks = []")  # from here on: the page under load
        assert table.locator("tr.job-row").count() == 1000

        page = _page(browser)
        page.add_init_script(LONG_TASKS)
        page.goto(f"{orch.http.url}#/jobs/{hot}")
        _wait_data(page, "d.lastSeq === '1'")
        seconds = 12
        producing = asyncio.run_coroutine_threadsafe(
            _produce(orch, harness, hot, seconds * 100), harness.loop
        )
        lags, round_trips = [], []
        while not producing.done():
            time.sleep(0.2)
            produced = harness.seq
            before = time.monotonic()
            shown = int(_data(page)["lastSeq"])
            round_trips.append(time.monotonic() - before)
            lags.append(max(0, produced - shown))
            before = time.monotonic()
            table.evaluate("() => document.querySelectorAll('tr.job-row').length")
            round_trips.append(time.monotonic() - before)
        producing.result()
        final = _wait_data(page, "d.state === 'CANCELLED'", timeout_s=30)
        assert int(final["lastSeq"]) == harness.seq and final["duplicates"] == "0"
        long_tasks = [*table.evaluate("window.__longTasks"), *page.evaluate("window.__longTasks")]
        # (the job page's list also holds its own first render, which is small)
        figures = {
            "jobs": 1000,
            "events_per_s": 100,
            "samples": len(lags),
            "lag_events_median": statistics.median(lags),
            "lag_events_max": max(lags),
            "page_round_trip_ms_max": round(max(round_trips) * 1000, 1),
            "longest_task_ms": round(max(long_tasks, default=0.0), 1),
            "table_first_render_s": round(table_ready_s, 2),
            "table_first_render_longest_task_ms": round(first_render_ms, 1),
        }
        (artifacts / "dashboard-load.json").write_text(json.dumps(figures, indent=2))
        print(f"dashboard load: {json.dumps(figures)}")
        # Generous bounds on a shared 2-core machine: the page stays within a second of the
        # stream (100 events) at the median and never falls 5 seconds behind.
        assert figures["lag_events_median"] <= 100, figures
        assert figures["lag_events_max"] <= 500, figures
        # The page's main thread never blocks for long (a long task is one over 50 ms); the
        # round trip of an evaluate() is reported, not bounded: it also measures this test
        # process and the machine's other load.
        assert figures["longest_task_ms"] < 1500, figures
        _screenshots(page, artifacts, "load-job")
        assert page.errors == [] and table.errors == []  # type: ignore[attr-defined]
    finally:
        harness.call(orch.stop(0))
        harness.close()


def test_with_a_token_the_page_asks_for_it_and_then_streams(
    browser: Browser, tmp_path: Path
) -> None:
    from shared.rpc.plumbing import Security

    harness = InProcess()
    orch = harness.call(
        create_server(
            OrchestratorConfig(
                listen="127.0.0.1:0",
                http_listen="127.0.0.1:0",
                state_dir=tmp_path / "state",
                store="memory:",
                security=Security(token="dashboard-s3cret"),
            )
        )
    )
    try:
        assert orch.http is not None
        job_id = harness.call(_populate(orch, 1))
        page = _page(browser)
        page.goto(f"{orch.http.url}#/jobs/{job_id}")
        page.locator("#token-form").wait_for()
        page.fill("#token", "wrong")
        page.click("#token-form button")
        page.wait_for_function(
            "() => document.getElementById('token-message').textContent.includes('refused')"
        )
        page.fill("#token", "dashboard-s3cret")
        page.click("#token-form button")
        shown = _wait_data(page, "d.state === 'QUEUED'")
        assert shown["lastSeq"] == "1" and page.locator("#token-form").is_hidden()
        harness.call(_append(orch, job_id, _batch(5, 10)))
        _wait_data(page, "d.lastSeq === '2' && d.state === 'RUNNING'")
        harness.call(_append(orch, job_id, _cancelled()))
        _wait_data(page, "d.state === 'CANCELLED'")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        harness.call(orch.stop(0))
        harness.close()


async def _append(orch: OrchestratorServer, job_id: str, event: JobEvent) -> None:
    orch.book.append(job_id, event)


EVENT_SOURCE = """
(url) => new Promise((resolve) => {
  const seen = [];
  const source = new EventSource(url);
  source.onmessage = (e) => seen.push([Number(e.lastEventId), JSON.parse(e.data).state]);
  source.onerror = () => {
    // After the terminal event the server ends the stream; EventSource reconnects with
    // Last-Event-ID, gets 204 No Content and gives up (CLOSED) instead of looping.
    if (source.readyState === EventSource.CLOSED) resolve(seen);
  };
  setTimeout(() => { source.close(); resolve(seen.concat([["timeout"]])); }, 20000);
})
"""


def test_a_plain_event_source_gets_every_event_once_and_stops_after_the_terminal(
    browser: Browser, tmp_path: Path
) -> None:
    harness = InProcess()
    orch = harness.call(
        create_server(
            OrchestratorConfig(
                listen="127.0.0.1:0",
                http_listen="127.0.0.1:0",
                state_dir=tmp_path / "state",
                store="memory:",
            )
        )
    )
    try:
        assert orch.http is not None
        job_id = harness.call(_populate(orch, 1))
        for i in range(5):
            harness.call(_append(orch, job_id, _batch(i, 5)))
        harness.call(_append(orch, job_id, _cancelled()))
        page = _page(browser)
        page.goto(orch.http.url)
        seen = page.evaluate(EVENT_SOURCE, f"/api/v1/jobs/{job_id}/events")
        assert [s[0] for s in seen] == list(range(1, 8)), seen
        assert seen[-1][1] == "JOB_STATE_CANCELLED"
    finally:
        harness.call(orch.stop(0))
        harness.close()
