"""``make demo``: an orchestrator and a trainer as real local processes, one real training run
on the built-in synthetic market with live progress, the model stored, everything stopped.

The demo trains the ``SYNTH`` symbol, which needs no data flag: ``SYNTH`` symbols are the
synthetic market's own; any other symbol needs ``--data``, ``--dataset`` or ``--synthetic``.
It talks to the orchestrator through the SDK (``shared.client.Client``), as any user would.
The orchestrator also serves its dashboard (``--http-listen`` on a free port): the demo prints
its address, and the job's own page as soon as the job exists, to watch it live in a browser."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from services import report
from services.exit_codes import ExitCode
from services.follow import follow
from services.processes import free_port, service, wait_serving
from shared import errors
from shared.client import Client
from shared.jobs import JobEvent, JobState


def _announced(events: Iterable[JobEvent], dashboard: str) -> Iterator[JobEvent]:
    """The events, after printing the job's dashboard page once its id is known."""
    for i, event in enumerate(events):
        if i == 0:
            print(f"Watch it live: {dashboard}#/jobs/{event.job_id}\n", flush=True)
        yield event


def _train(orchestrator: str, epochs: int, dashboard: str) -> ExitCode:
    """One training run of SYNTH 1h, followed live; its summary printed when it succeeds."""
    try:
        with Client(orchestrator) as client:
            events = client.train(["SYNTH"], ["1h"], epochs=epochs, bars=6000)
            last = follow(_announced(events, dashboard), as_json=False)
    except errors.TrainwireError as exc:
        print(f"{exc.code or type(exc).__name__}: {exc.message}", file=sys.stderr)
        if isinstance(exc, errors.UnavailableError):
            return ExitCode.UNREACHABLE
        return ExitCode.RPC_ERROR
    if last is None:
        print("the stream ended before the job finished", file=sys.stderr)
        return ExitCode.RPC_ERROR
    if last.state is JobState.SUCCEEDED and last.result:
        for line in report.result_summary(last.result):
            print(line)
        return ExitCode.OK
    if last.error:
        print(f"Job {last.job_id} {last.state.value}: {last.error.message}", file=sys.stderr)
    return ExitCode.CANCELLED if last.state is JobState.CANCELLED else ExitCode.FAILED


def run_demo(*, epochs: int, state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    orch_port, trainer_port, http_port = free_port(), free_port(), free_port()
    orch, trainer = f"127.0.0.1:{orch_port}", f"127.0.0.1:{trainer_port}"
    dashboard = f"http://127.0.0.1:{http_port}/"
    print(f"trainwire demo: orchestrator {orch}, trainer {trainer}, state in {state_dir}/")
    with (
        service(
            ["trainer", "--listen", trainer, "--work-dir", str(state_dir / "trainer-work")],
            state_dir / "trainer.log",
        ) as trainer_proc,
        service(
            [
                "orchestrator",
                "--listen",
                orch,
                "--node",
                trainer,
                "--state-dir",
                str(state_dir),
                "--http-listen",
                f"127.0.0.1:{http_port}",
            ],
            state_dir / "orchestrator.log",
        ) as orch_proc,
    ):
        wait_serving(trainer, trainer_proc)
        wait_serving(orch, orch_proc)
        print("both services are SERVING; training on the synthetic market (SYNTH, 1h)")
        print(f"Dashboard: {dashboard} (jobs, nodes, models; open while the demo runs)")
        code = _train(orch, epochs, dashboard)
        if sys.stdin.isatty():
            try:
                input(f"\nThe dashboard stays up at {dashboard}; press Enter to stop the demo. ")
            except (EOFError, KeyboardInterrupt):
                print()
    models = sorted(
        (state_dir / "models").glob("*/*_v*/model.safetensors"), key=lambda p: p.stat().st_mtime
    )
    if code == ExitCode.OK and models:
        print(
            f"\nThe model is on disk at {models[-1].parent}/ (model.safetensors + "
            "metadata.json); logs in "
            f"{state_dir}/*.log"
        )
        print(
            "Your own bars next: `trainwire train --symbols EURUSD --timeframes 1h --data DIR` "
            "(CSV/Parquet files in DIR under the trainer's --data-dir), or `trainwire datasets "
            "upload EURUSD.csv` and then `--dataset EURUSD` on any trainer"
        )
    else:
        print(
            f"\nthe demo's training run did not succeed (exit {int(code)}); see {state_dir}/*.log",
            file=sys.stderr,
        )
    return code
