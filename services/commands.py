"""The client verbs of ``trainwire``: train, submit, watch, jobs, cancel, nodes, models
(backtest and strategies are ``services.commands_backtest``; optimize and configurations
``services.commands_optimize``).

All of them talk to the orchestrator through the SDK (``shared.client``), so they see typed
results and typed errors only. Exit codes are ``services.exit_codes.ExitCode``: 0 succeeded,
1 job failed, 3 job cancelled, 4 orchestrator unreachable, 5 request rejected (bad input,
unknown job/model), 6 other RPC error, 130 interrupted; 2 a flag value that cannot work
(``services.flags.FlagError``), found before anything is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services import report
from services.exit_codes import ExitCode
from services.flags import FlagError
from shared import errors
from shared.client import Client, data
from shared.client.download import METADATA_FILE, WEIGHTS_FILE
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.rpc.plumbing import Security

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


def verb(name: str) -> Command:
    """``cmd_<name>`` of this module or of the job-kind verbs' modules."""
    from services import commands_backtest, commands_optimize

    for module in (sys.modules[__name__], commands_backtest, commands_optimize):
        found: Command | None = getattr(module, f"cmd_{name}", None)
        if found is not None:
            return found
    raise LookupError(f"no client verb {name!r}")


def run(args: argparse.Namespace, security: Security, command: Command) -> int:
    """Run a client verb with one connection; typed errors become messages and exit codes."""
    try:
        with Client(args.orchestrator, security=security) as client:
            return command(args, client)
    except errors.TrainwireError as exc:
        field = f" (field {exc.field})" if exc.field else ""
        print(f"{exc.code or type(exc).__name__}: {exc.message}{field}", file=sys.stderr)
        if isinstance(exc, errors.UnavailableError):
            return ExitCode.UNREACHABLE
        return ExitCode.REJECTED if exc.code in _REJECTED else ExitCode.RPC_ERROR
    except BrokenPipeError:  # the reader of stdout stopped (`| head`): nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except FlagError as exc:
        print(f"trainwire {args.command}: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIGURATION
    except (OSError, ValueError) as exc:  # a strategy file that cannot be read or parsed
        print(f"trainwire {args.command}: {exc}", file=sys.stderr)
        return ExitCode.REJECTED


def _request_options(args: argparse.Namespace) -> dict[str, Any]:
    if not args.strategy and (not args.symbols or not args.timeframes):
        raise ValueError("--symbols and --timeframes are required without --strategy")
    options: dict[str, Any] = {
        "epochs": args.epochs or None,
        "seed": args.seed,
        "strategy_file": args.strategy,
        "require_gpu": args.require_gpu,
        "node": args.node,
        "request_id": args.request_id,
        "label_threshold": args.label_threshold,
    }
    window = {"start": args.start, "end": args.end}
    if args.data is not None or args.dataset:
        if args.bars:
            raise ValueError("--bars sets the synthetic market's length; it needs --synthetic")
        window["timezone"] = args.timezone
        if args.data is not None:
            options["data"] = data.directory(args.data, **window)
        else:
            options["data"] = data.dataset(args.dataset, **window)
        return options
    if args.timezone:
        raise ValueError("--timezone is for the naive timestamps of --data or --dataset files")
    if args.synthetic:
        default = data.synthetic()
        options["data"] = data.synthetic(
            bars=args.bars or default.bars,
            seed=default.seed if args.seed is None else args.seed,
            **window,
        )
        return options
    # No source named: the server trains SYNTH symbols on the synthetic market and refuses
    # any other symbol, saying which flag to add.
    return {**options, **window, "bars": args.bars or None, "market_seed": args.seed}


# --- following a job ----------------------------------------------------------------------------


def _follow(args: argparse.Namespace, client: Client, events: Iterator[JobEvent]) -> int:
    from services.follow import follow

    job_id, seq = "", getattr(args, "after_seq", 0)

    def tracked() -> Iterator[JobEvent]:
        nonlocal job_id, seq
        for event in events:
            job_id, seq = event.job_id, event.seq
            yield event

    try:
        last = follow(tracked(), as_json=args.json)
    except KeyboardInterrupt:
        interactive = not args.json and sys.stdin.isatty()
        resume = _watch_command(args, job_id, seq) if job_id else ""
        return _interrupted(client, job_id, resume, interactive=interactive)
    except errors.UnavailableError as exc:
        if not job_id:
            raise
        print(f"\n{exc.code or 'UNAVAILABLE'}: {exc.message}", file=sys.stderr)
        print(
            f"the connection dropped; job {job_id} keeps running. Resume where this left off "
            f"with:\n  {_watch_command(args, job_id, seq)}",
            file=sys.stderr,
        )
        return ExitCode.UNREACHABLE
    if last is None:
        if job_id:
            print(
                f"the stream ended before job {job_id} finished; resume with:\n"
                f"  {_watch_command(args, job_id, seq)}",
                file=sys.stderr,
            )
        else:
            print("the stream ended before the job finished", file=sys.stderr)
        return ExitCode.RPC_ERROR
    if not args.json:
        _summary(last)
    return {JobState.SUCCEEDED: ExitCode.OK, JobState.CANCELLED: ExitCode.CANCELLED}.get(
        last.state, ExitCode.FAILED
    )


def _watch_command(args: argparse.Namespace, job_id: str, seq: int) -> str:
    """The ``trainwire watch`` command that resumes after event ``seq``, to the same
    orchestrator (named when it is not the default one)."""
    import shlex

    command = ["trainwire", "watch", job_id, "--after-seq", str(seq)]
    default = os.environ.get("TRAINWIRE_ORCHESTRATOR", "localhost:50051")
    if args.orchestrator != default:
        command += ["--orchestrator", args.orchestrator]
    if args.json:
        command.append("--json")
    return shlex.join(command)


def _interrupted(client: Client, job_id: str, resume: str, *, interactive: bool) -> int:
    """Ctrl-C: offer to cancel the job (on a terminal) or detach and say how to come back."""
    if job_id and interactive:
        try:
            answer = input(f"\nCancel job {job_id}? [y/N] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer in ("y", "yes"):
            client.cancel(job_id, reason="cancelled from the command line")
            print(f"job {job_id} cancelled", file=sys.stderr)
            return ExitCode.CANCELLED
    if job_id:
        print(
            f"\ndetached; job {job_id} keeps running.\n  follow it: {resume}\n"
            f"  stop it:   trainwire cancel {job_id}",
            file=sys.stderr,
        )
    return ExitCode.INTERRUPTED


def _summary(last: JobEvent) -> None:
    from services import report_kinds

    lines: list[str] = []
    if last.state is JobState.SUCCEEDED and last.result:
        lines = report.result_summary(last.result)
    elif last.state is JobState.SUCCEEDED and last.backtest_result:
        lines = report_kinds.backtest_summary(last.backtest_result)
    elif last.optimize_result:  # a cancelled optimization keeps its finished trials
        lines = report_kinds.optimization_summary(last.optimize_result)
    for line in lines:
        print(line)
    if last.error:
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
    return ExitCode.OK


def cmd_watch(args: argparse.Namespace, client: Client) -> int:
    return _follow(args, client, client.watch(args.job_id, after_seq=args.after_seq))


def cmd_jobs(args: argparse.Namespace, client: Client) -> int:
    states = [JobState(s) for s in args.state]
    jobs = client.jobs(states=states, limit=args.limit)
    if args.json:
        for job in jobs:
            print(_json(job))
        return ExitCode.OK
    rows = [
        [j.job_id, j.kind.value, j.state.value, f"{j.percentage:.1f}%", j.node or "-",
         _time(j.created_at), j.message[:60]]
        for j in jobs
    ]  # fmt: skip
    _print_table(["JOB", "KIND", "STATE", "PROGRESS", "NODE", "CREATED", "MESSAGE"], rows)
    return ExitCode.OK


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    job = client.cancel(args.job_id, reason=args.reason)
    print(f"{job.job_id}: {job.state.value}")
    return ExitCode.OK


def cmd_nodes(args: argparse.Namespace, client: Client) -> int:
    nodes = client.nodes()
    if args.json:
        for node in nodes:
            print(_json(node))
        return ExitCode.OK
    _print_table(report.NODE_HEADERS, [report.node_row(n) for n in nodes])
    return ExitCode.OK


def cmd_models_list(args: argparse.Namespace, client: Client) -> int:
    models = client.models(strategy=args.strategy_name)
    if args.json:
        for model in models:
            print(_json(model))
        return ExitCode.OK
    _print_table(report.MODEL_HEADERS, [report.model_row(m) for m in models])
    return ExitCode.OK


def cmd_models_show(args: argparse.Namespace, client: Client) -> int:
    info = client.model(args.name)
    if args.json:
        print(json.dumps(_plain(info), indent=2, sort_keys=True))
    else:
        print("\n".join(report.model_summary(info)))
    return ExitCode.OK


def cmd_models_download(args: argparse.Namespace, client: Client) -> int:
    weights = client.download(args.name, Path(args.dest))
    metadata = weights.with_name(METADATA_FILE)
    if args.json:
        print(json.dumps({"directory": str(weights.parent), "weights": str(weights),
                          "metadata": str(metadata)}))  # fmt: skip
    else:
        print(f"{weights}\n{metadata}")
    return ExitCode.OK


def cmd_predict(args: argparse.Namespace, client: Client) -> int:
    """Download the model (or take it from --cache-dir) and print its signal for every bar of
    a file: CSV (the default) or, with --json, one JSON object per bar."""
    if args.json and args.csv:
        raise ValueError("choose one output: --csv (the default) or --json")
    data_file = Path(args.data)
    if not data_file.is_file():
        raise ValueError(f"--data {data_file}: no such file")
    from shared.pipeline.predict import predict_file

    with _model_dir(client, args.name, args.cache_dir) as (model_dir, ref):
        signals = predict_file(model_dir, data_file, timezone=args.timezone)
    print(
        f"{ref.name} (sha256 {ref.sha256[:12]}…) on {data_file}: {len(signals):,} bars with a "
        "signal (the first bars warm the indicators up and get none)",
        file=sys.stderr,
    )
    times = [c for c in ("time", "known_at") if c in signals.columns]
    for column in times:
        signals[column] = signals[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.json:
        for row in signals.to_dict(orient="records"):
            print(json.dumps(row))
    else:
        signals.to_csv(sys.stdout, index=False, float_format="%.6f")
    return ExitCode.OK


@contextlib.contextmanager
def _model_dir(client: Client, name: str, cache_dir: str) -> Iterator[tuple[Path, ModelRef]]:
    """A directory holding the model's files: a kept copy in ``cache_dir`` whose sha256 still
    matches the model's, else a fresh download (there, or in a temporary directory)."""
    if not cache_dir:
        with tempfile.TemporaryDirectory(prefix="trainwire-predict-") as temp:
            weights = client.download(name, temp)
            yield weights.parent, client.model(_versioned(weights)).ref
        return
    ref = client.model(name).ref
    weights = Path(cache_dir).joinpath(*ref.name.split("/"), WEIGHTS_FILE)
    if not (weights.with_name(METADATA_FILE).is_file() and _sha256(weights) == ref.sha256):
        weights = client.download(ref.name, cache_dir)
    yield weights.parent, ref


def _versioned(weights: Path) -> str:
    """The versioned model name a download wrote under: ``strategy/SYMBOLS_TFS_vN``."""
    return f"{weights.parent.parent.name}/{weights.parent.name}"


def _sha256(path: Path) -> str:
    import hashlib

    if not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- datasets -----------------------------------------------------------------------------------


def cmd_datasets_upload(args: argparse.Namespace, client: Client) -> int:
    info = client.upload_dataset(args.files, name=args.name)
    if args.json:
        print(_json(info))
        return ExitCode.OK
    print(f"Dataset stored: {info.name} ({info.sha256[:12]}, {len(info.files)} files, "
          f"{info.size_bytes:,} bytes)")  # fmt: skip
    _dataset_files(info)
    if info.files:
        first = info.files[0]
        print(
            f"Train on it: trainwire train --dataset {info.name} --symbols {first.symbol} "
            f"--timeframes {first.timeframe}"
        )
    return ExitCode.OK


def cmd_datasets_list(args: argparse.Namespace, client: Client) -> int:
    datasets = client.list_datasets()
    if args.json:
        for info in datasets:
            print(_json(info))
        return ExitCode.OK
    rows = [
        [d.name, d.sha256[:12], str(len(d.files)), f"{d.size_bytes:,}",
         " ".join(sorted({f"{f.symbol} {f.timeframe}" for f in d.files})), _time(d.created_at)]
        for d in datasets
    ]  # fmt: skip
    _print_table(["NAME", "VERSION", "FILES", "BYTES", "SERIES", "CREATED"], rows)
    return ExitCode.OK


def cmd_datasets_show(args: argparse.Namespace, client: Client) -> int:
    info = client.get_dataset(args.name)
    if args.json:
        print(_json(info))
        return ExitCode.OK
    print(f"{info.name}  version {info.sha256}  created {_time(info.created_at)} UTC")
    _dataset_files(info)
    return ExitCode.OK


def cmd_datasets_delete(args: argparse.Namespace, client: Client) -> int:
    info = client.delete_dataset(args.name)
    if args.json:
        print(_json(info))
    else:
        print(f"Dataset deleted: {info.name} (every version)")
    return ExitCode.OK


def _dataset_files(info: DatasetInfo) -> None:
    rows = [
        [f.filename, f.symbol, f.timeframe, f"{f.rows:,}", *report.bar_times(f.start, f.end),
         f"{f.size_bytes:,}", f.sha256[:12]]
        for f in info.files
    ]  # fmt: skip
    headers = ["FILE", "SYMBOL", "TF", "ROWS", "FIRST BAR", "LAST BAR", "BYTES", "SHA256"]
    for line in report.table(headers, rows):
        print(f"  {line}")


# --- output helpers -----------------------------------------------------------------------------


def follow_job(args: argparse.Namespace, client: Client, events: Iterator[JobEvent]) -> int:
    """Follow a job's events to the end: the live display, the summary, the exit code."""
    return _follow(args, client, events)


def json_line(value: Any) -> str:
    return _json(value)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    _print_table(headers, rows)


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    for line in report.table(headers, rows):
        print(line)


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
    if isinstance(value, float) and not math.isfinite(value):
        return None  # an undefined stat or score: null keeps the line JSON
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)
