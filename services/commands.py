"""The client verbs of ``trainwire``: train, submit, watch, jobs, cancel, nodes, models.

All of them talk to the orchestrator through the SDK (``shared.client``), so they see typed
results and typed errors only. Exit codes: 0 succeeded, 1 job failed, 3 job cancelled,
4 orchestrator unreachable, 5 request rejected (bad input, unknown job/model), 6 other RPC
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import errors
from shared.client import Client
from shared.jobs import JobEvent, JobState
from shared.rpc.plumbing import Security

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_UNREACHABLE, EXIT_REJECTED, EXIT_RPC = 0, 1, 3, 4, 5, 6
EXIT_INTERRUPTED = 130
_REJECTED = {
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}

Command = Callable[[argparse.Namespace, Client], int]


def run(args: argparse.Namespace, security: Security, command: Command) -> int:
    """Run a client verb with one connection; typed errors become messages and exit codes."""
    try:
        with Client(args.orchestrator, security=security) as client:
            return command(args, client)
    except errors.TrainwireError as exc:
        field = f" (field {exc.field})" if exc.field else ""
        print(f"{exc.code or type(exc).__name__}: {exc.message}{field}", file=sys.stderr)
        if isinstance(exc, errors.UnavailableError):
            return EXIT_UNREACHABLE
        return EXIT_REJECTED if exc.code in _REJECTED else EXIT_RPC
    except (OSError, ValueError) as exc:  # a strategy file that cannot be read or parsed
        print(f"trainwire {args.command}: {exc}", file=sys.stderr)
        return EXIT_REJECTED


def _request_options(args: argparse.Namespace) -> dict[str, Any]:
    if not args.strategy and (not args.symbols or not args.timeframes):
        raise ValueError("--symbols and --timeframes are required without --strategy")
    return {
        "epochs": args.epochs or None,
        "seed": args.seed,
        "bars": args.bars or None,
        "strategy_file": args.strategy,
        "require_gpu": args.require_gpu,
        "node": args.node,
        "request_id": args.request_id,
    }


# --- following a job ----------------------------------------------------------------------------


def _follow(args: argparse.Namespace, client: Client, events: Iterator[JobEvent]) -> int:
    from services.follow import follow

    job_id = ""

    def tracked() -> Iterator[JobEvent]:
        nonlocal job_id
        for event in events:
            job_id = event.job_id
            yield event

    try:
        last = follow(tracked(), as_json=args.json)
    except KeyboardInterrupt:
        return _interrupted(client, job_id, interactive=not args.json and sys.stdin.isatty())
    if last is None:
        print("the stream ended before the job finished", file=sys.stderr)
        return EXIT_RPC
    if not args.json:
        _summary(last)
    return {JobState.SUCCEEDED: EXIT_OK, JobState.CANCELLED: EXIT_CANCELLED}.get(
        last.state, EXIT_FAILED
    )


def _interrupted(client: Client, job_id: str, *, interactive: bool) -> int:
    """Ctrl-C: offer to cancel the job (on a terminal) or detach and say how to come back."""
    if job_id and interactive:
        try:
            answer = input(f"\nCancel job {job_id}? [y/N] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer in ("y", "yes"):
            client.cancel(job_id, reason="cancelled from the command line")
            print(f"job {job_id} cancelled", file=sys.stderr)
            return EXIT_CANCELLED
    if job_id:
        print(
            f"\ndetached; job {job_id} keeps running. Follow it with `trainwire watch {job_id}`,"
            f" stop it with `trainwire cancel {job_id}`",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED


def _summary(last: JobEvent) -> None:
    if last.state is JobState.SUCCEEDED and last.result and last.result.model:
        model = last.result.model
        print(
            f"Model stored: {model.name} (v{model.version}, {model.size_bytes} bytes, "
            f"sha256 {model.sha256})"
        )
        accuracy = last.result.test_metrics.get("accuracy")
        if accuracy is not None:
            print(f"Test accuracy: {accuracy:.3f}")
    elif last.error:
        print(f"Job {last.job_id} {last.state.value}: {last.error.message}", file=sys.stderr)


# --- verbs --------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, client: Client) -> int:
    events = client.train(args.symbols, args.timeframes, **_request_options(args))
    return _follow(args, client, events)


def cmd_submit(args: argparse.Namespace, client: Client) -> int:
    job = client.submit(args.symbols, args.timeframes, **_request_options(args))
    if args.json:
        print(_json(job))
    else:
        print(job.job_id)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, client: Client) -> int:
    return _follow(args, client, client.watch(args.job_id, after_seq=args.after_seq))


def cmd_jobs(args: argparse.Namespace, client: Client) -> int:
    states = [JobState(s) for s in args.state]
    jobs = client.jobs(states=states, limit=args.limit)
    if args.json:
        for job in jobs:
            print(_json(job))
        return EXIT_OK
    print(f"{'JOB':<18}{'STATE':<11}{'PROGRESS':>9}  {'NODE':<22}{'CREATED':<21}MESSAGE")
    for job in jobs:
        print(
            f"{job.job_id:<18}{job.state.value:<11}{job.percentage:>8.1f}%  {job.node:<22}"
            f"{_time(job.created_at):<21}{job.message[:60]}"
        )
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    job = client.cancel(args.job_id, reason=args.reason)
    print(f"{job.job_id}: {job.state.value}")
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace, client: Client) -> int:
    nodes = client.nodes()
    if args.json:
        for node in nodes:
            print(_json(node))
        return EXIT_OK
    print(f"{'ADDRESS':<24}{'HEALTH':<13}{'DEVICE':<30}{'SLOTS':<7}{'PROBE':>9}  DETAIL")
    for n in nodes:
        device = f"{n.info.device.kind.value} {n.info.device.name}" if n.info else "?"
        slots = f"{n.slots_used}/{n.info.slots}" if n.info else f"{n.slots_used}/?"
        print(
            f"{n.address:<24}{n.health.value:<13}{device[:29]:<30}{slots:<7}"
            f"{n.latency_ms:>7.1f}ms  {n.detail}"
        )
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace, client: Client) -> int:
    models = client.models(strategy=args.strategy_name)
    if args.json:
        for model in models:
            print(_json(model))
        return EXIT_OK
    print(f"{'NAME':<48}{'SIZE':>10}  {'CREATED':<21}SHA256")
    for m in models:
        print(f"{m.name:<48}{m.size_bytes:>10}  {_time(m.created_at):<21}{m.sha256[:16]}")
    return EXIT_OK


def cmd_models_show(args: argparse.Namespace, client: Client) -> int:
    info = client.model(args.name)
    print(_json(info) if args.json else json.dumps(_plain(info), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_models_download(args: argparse.Namespace, client: Client) -> int:
    path = client.download(args.name, Path(args.dest))
    print(path)
    return EXIT_OK


# --- output helpers -----------------------------------------------------------------------------


def _time(seconds: float) -> str:
    if not seconds:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _plain(value: Any) -> Any:
    import enum

    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)
