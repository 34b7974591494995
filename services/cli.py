"""The ``trainwire`` command: run the services, or act as a client of the orchestrator.

Exit codes are ``services.exit_codes.ExitCode``: 0 succeeded, 1 job failed, 2 bad
configuration, 3 job cancelled, 4 orchestrator unreachable, 5 request rejected (bad input),
6 other RPC error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from services.exit_codes import ExitCode
from shared.jobs import JobState

if TYPE_CHECKING:
    from shared.rpc.plumbing import Security
    from shared.spec import JobLimits

_LOGGER = logging.getLogger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRAINWIRE_{name}", default)


def _env_flag(name: str) -> bool:
    """A boolean from ``TRAINWIRE_<name>``: 1, true, yes or on (any case) is true."""
    return _env(name, "").strip().lower() in ("1", "true", "yes", "on")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])


def _add_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-listen",
        default=_env("METRICS_LISTEN", ""),
        help="HOST:PORT to serve Prometheus /metrics on (default: off)",
    )


def _add_limits(p: argparse.ArgumentParser) -> None:
    """The job-size limits; give the orchestrator and its trainers the same ones."""
    from shared.spec import DEFAULT_LIMITS

    p.add_argument(
        "--max-parameters",
        type=int,
        default=int(_env("MAX_PARAMETERS", str(DEFAULT_LIMITS.max_parameters))),
        help="largest model accepted, in weights and biases",
    )
    p.add_argument(
        "--max-bars",
        type=int,
        default=int(_env("MAX_BARS", str(DEFAULT_LIMITS.max_bars))),
        help="most bars a job may load, over all its symbols and timeframes",
    )


def _limits(args: argparse.Namespace) -> JobLimits:
    from shared.spec import JobLimits

    return JobLimits(max_parameters=args.max_parameters, max_bars=args.max_bars)


def _add_client_options(p: argparse.ArgumentParser, verb: str) -> None:
    """What every client verb takes: the orchestrator, --json, security; runs cmd_<verb>."""
    p.add_argument(
        "--orchestrator",
        default=_env("ORCHESTRATOR", "localhost:50051"),
        help="HOST:PORT (env TRAINWIRE_ORCHESTRATOR)",
    )
    p.add_argument("--json", action="store_true", help="JSON (lines) on stdout, for scripts")
    _add_security(p)
    p.set_defaults(func=_client_verb(verb))


def _add_security(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("security (TLS/mTLS, bearer token)")
    g.add_argument("--tls-cert", default=_env("TLS_CERT", ""), help="PEM certificate")
    g.add_argument("--tls-key", default=_env("TLS_KEY", ""), help="PEM private key")
    g.add_argument(
        "--tls-ca",
        default=_env("TLS_CA", ""),
        help="PEM CA: clients verify servers with it; a server given it requires client certs",
    )
    g.add_argument(
        "--tls-server-name", default=_env("TLS_SERVER_NAME", ""), help="TLS name to verify"
    )
    g.add_argument(
        "--token-file",
        default=_env("TOKEN_FILE", ""),
        help="read the shared bearer token from this file (env TRAINWIRE_TOKEN_FILE)",
    )
    g.add_argument(
        "--token",
        default=None,
        help="shared bearer token; prefer env TRAINWIRE_TOKEN or --token-file: a token on the "
        "command line shows in ps",
    )


def _token(args: argparse.Namespace) -> str:
    """The bearer token: from --token-file, --token or TRAINWIRE_TOKEN (only one of them)."""
    from shared.rpc.plumbing import read_token_file

    env_token = _env("TOKEN", "")
    if args.token_file:
        if args.token or env_token:
            given = "--token" if args.token else "TRAINWIRE_TOKEN"
            raise ValueError(f"give the token once: {given} and --token-file are both set")
        return read_token_file(Path(args.token_file))
    if args.token:
        _LOGGER.warning(
            "--token puts the token on the command line, where every local user sees it (ps, "
            "/proc); pass it in TRAINWIRE_TOKEN or --token-file instead"
        )
        return str(args.token)
    return env_token


def _security(args: argparse.Namespace) -> Security:
    from shared.rpc.plumbing import Security

    security = Security(
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        tls_ca=Path(args.tls_ca) if args.tls_ca else None,
        token=_token(args),
        server_name=args.tls_server_name,
    )
    security.validate()
    return security


# --- services -----------------------------------------------------------------------------------


def cmd_orchestrator(args: argparse.Namespace) -> int:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import serve
    from shared.errors import TrainwireError
    from shared.ids import check_address

    nodes = tuple(args.node or [n for n in _env("NODES", "").split(",") if n])
    for node in nodes:
        try:
            check_address(node, field="--node")
        except TrainwireError as exc:
            raise ValueError(f"--node: {exc.message}") from None
    config = OrchestratorConfig(
        listen=args.listen,
        nodes=nodes,
        state_dir=Path(args.state_dir),
        store=args.store,
        advertise=args.advertise,
        metrics_listen=args.metrics_listen,
        http_listen=args.http_listen,
        max_attempts=args.max_attempts,
        heartbeat_interval_s=args.heartbeat_interval,
        queue_timeout_s=args.queue_timeout,
        node_ttl_s=args.node_ttl,
        limits=_limits(args),
        security=_security(args),
    )
    asyncio.run(serve(config))
    return ExitCode.OK


def cmd_trainer(args: argparse.Namespace) -> int:
    from services.trainer.config import TrainerConfig
    from services.trainer.server import serve

    config = TrainerConfig(
        listen=args.listen,
        work_dir=Path(args.work_dir),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        slots=args.slots,
        device=args.device,
        orchestrator=args.orchestrator,
        advertise=args.advertise,
        torch_threads=args.torch_threads,
        upload_window_s=args.upload_window,
        metrics_listen=args.metrics_listen,
        insecure=args.insecure,
        limits=_limits(args),
        security=_security(args),
    )
    asyncio.run(serve(config, grace_s=args.grace))
    return ExitCode.OK


# --- client verbs (services.commands) -----------------------------------------------------------


def _client_verb(name: str) -> Callable[[argparse.Namespace], int]:
    def run_verb(args: argparse.Namespace) -> int:
        from services import commands

        return commands.run(args, _security(args), commands.verb(name))

    return run_verb


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the server at ADDRESS reports SERVING (container health checks)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from shared.rpc import plumbing

    with plumbing.create_sync_channel(args.address, _security(args)) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except Exception as exc:
            print(f"{args.address}: not healthy: {exc}", file=sys.stderr)
            return ExitCode.UNREACHABLE
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{args.address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return ExitCode.OK if serving else ExitCode.FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(epochs=args.epochs, state_dir=Path(args.state_dir))


# --- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainwire", description="gRPC training service for trading-strategy models"
    )
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=_env("LOG_FORMAT", "text"),
        help="json: one JSON object per log line (for log shippers)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("orchestrator", help="run the orchestrator (the public endpoint)")
    p.add_argument("--listen", default=_env("LISTEN", "0.0.0.0:50051"), help="HOST:PORT")
    p.add_argument("--node", action="append", help="a trainer node HOST:PORT (repeatable)")
    p.add_argument(
        "--state-dir",
        default=_env("STATE_DIR", "state"),
        help="models, the job store (jobs.sqlite3) and upload staging live here",
    )
    p.add_argument(
        "--store",
        default=_env("STORE", ""),
        help="job store URL: sqlite:///ABS/PATH, sqlite:REL/PATH (under --state-dir),"
        " postgresql://USER@HOST:PORT/DB or memory: (default: jobs.sqlite3 in --state-dir)",
    )
    p.add_argument(
        "--advertise",
        default=_env("ADVERTISE", ""),
        help="HOST:PORT trainers dial to upload models (default: from --listen)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=int(_env("MAX_ATTEMPTS", "2")),
        help="runs a job may get when its node is lost mid-job (1 = never retry)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=float(_env("HEARTBEAT_INTERVAL", "5")),
        help="seconds between registered nodes' heartbeats; 3 missed take a node out",
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=float(_env("QUEUE_TIMEOUT", "0")),
        help="seconds a job may wait QUEUED for a node that can take it (0 = as long as it takes)",
    )
    p.add_argument(
        "--node-ttl",
        type=float,
        default=float(_env("NODE_TTL", "600")),
        help="seconds a registered node may be out and silent before it is forgotten",
    )
    p.add_argument(
        "--http-listen",
        default=_env("HTTP_LISTEN", ""),
        help="HOST:PORT for the HTTP API and the dashboard (default: off)",
    )
    _add_limits(p)
    _add_metrics(p)
    _add_security(p)
    p.set_defaults(func=cmd_orchestrator)

    p = sub.add_parser("trainer", help="run a trainer node")
    p.add_argument("--listen", default=_env("LISTEN", "0.0.0.0:50052"), help="HOST:PORT")
    p.add_argument("--work-dir", default=_env("WORK_DIR", "work"), help="job scratch space")
    p.add_argument("--data-dir", default=_env("DATA_DIR", ""), help="root of CSV/Parquet data")
    p.add_argument("--slots", type=int, default=int(_env("SLOTS", "1")), help="concurrent jobs")
    p.add_argument("--device", default=_env("DEVICE", ""), help="cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--orchestrator",
        default=_env("ORCHESTRATOR", ""),
        help="HOST:PORT of the orchestrator to register with",
    )
    p.add_argument(
        "--advertise",
        default=_env("ADVERTISE", ""),
        help="HOST:PORT the orchestrator should dial (default: from --listen)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(_env("GRACE", "30")),
        help="on SIGTERM/SIGINT, seconds running jobs may finish before they are cancelled",
    )
    p.add_argument(
        "--upload-window",
        type=float,
        default=float(_env("UPLOAD_WINDOW", "300")),
        help="seconds an upload keeps retrying while the orchestrator is unreachable",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=int(_env("TORCH_THREADS", "0")),
        help="intra-op threads per job (default: (cores - 1) / slots)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=_env_flag("INSECURE"),
        help="serve a non-loopback --listen with neither a token nor mTLS: anyone who reaches "
        "the port can run jobs (env TRAINWIRE_INSECURE=1)",
    )
    _add_limits(p)
    _add_metrics(p)
    _add_security(p)
    p.set_defaults(func=cmd_trainer)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        _add_client_options(p, name)
        return p

    def request_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--symbols", nargs="+", default=[], help="default: the strategy file's")
        p.add_argument("--timeframes", nargs="+", default=[], help="default: the strategy file's")
        p.add_argument("--epochs", type=int, default=0)
        p.add_argument(
            "--seed",
            type=int,
            default=None,
            help="training seed (weights, shuffling); on synthetic data also the market's",
        )
        g = p.add_argument_group(
            "data (SYNTH symbols train on the synthetic market without these; any other symbol "
            "needs --data, --dataset or --synthetic)"
        )
        source = g.add_mutually_exclusive_group()
        source.add_argument(
            "--data",
            metavar="DIR",
            help="{SYMBOL}_{tf}.csv|parquet or {SYMBOL}.csv|parquet files in DIR, relative to "
            "the trainer's --data-dir ('.' = the data dir itself)",
        )
        source.add_argument(
            "--dataset", metavar="NAME", help="a dataset uploaded with `trainwire datasets upload`"
        )
        source.add_argument(
            "--synthetic",
            action="store_true",
            help="the built-in synthetic market, for any symbol (--bars, --seed apply)",
        )
        g.add_argument("--bars", type=int, default=0, help="synthetic bars per symbol")
        g.add_argument("--start", default="", help="first bar to use: ISO-8601 date or time")
        g.add_argument("--end", default="", help="last bar to use (a date covers its whole day)")
        g.add_argument(
            "--timezone",
            default="",
            help="IANA zone naive timestamps in the files are in (default UTC)",
        )
        p.add_argument("--strategy", help="a KTRDR v3 strategy YAML file")
        p.add_argument(
            "--label-threshold",
            metavar="FRACTION|auto",
            default=None,
            help="the zigzag labels' move size, e.g. 0.004; auto: calibrated from the training "
            "rows (a job whose labels leave a class (nearly) empty fails and suggests one)",
        )
        p.add_argument("--require-gpu", action="store_true")
        p.add_argument("--node", default="", help="run on this node")
        p.add_argument("--request-id", default="", help="makes a retried submit idempotent")

    request_flags(client("train", "submit a job and follow it live to the end"))
    request_flags(client("submit", "submit a job; print its id"))
    p = client("watch", "follow a job live (reconnect with --after-seq)")
    p.add_argument("job_id")
    p.add_argument("--after-seq", type=int, default=0)
    p = client("jobs", "list jobs, newest first")
    p.add_argument("--state", action="append", default=[], choices=[s.value for s in JobState])
    p.add_argument("--limit", type=int, default=50)
    p = client("cancel", "cancel a job (queued: at once; running: at the next batch)")
    p.add_argument("job_id")
    p.add_argument("--reason", default="")
    client("nodes", "list trainer nodes with health, device and slots")
    p = sub.add_parser("models", help="the model repository: list, show, download")
    models = p.add_subparsers(dest="models_command", required=True)
    for verb, help_text in (
        ("list", "list stored models"),
        ("show", "a model's metrics and metadata"),
        ("download", "download a model's weights (sha256-verified)"),
    ):
        q = models.add_parser(verb, help=help_text)
        _add_client_options(q, f"models_{verb}")
        if verb == "list":
            q.add_argument("--strategy", dest="strategy_name", default="", help="one strategy")
        else:
            q.add_argument("name", help="strategy/SYMBOLS_TFS[_vN]; without _vN: the latest")
        if verb == "download":
            q.add_argument("--dest", default="models", help="directory to save under")

    p = sub.add_parser("datasets", help="market data uploaded to the orchestrator")
    datasets = p.add_subparsers(dest="datasets_command", required=True)
    q = datasets.add_parser("upload", help="upload CSV/Parquet files as a named dataset")
    _add_client_options(q, "datasets_upload")
    q.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="{SYMBOL}_{tf}.csv|parquet or {SYMBOL}.csv|parquet (timeframe from the bar spacing)",
    )
    q.add_argument("--name", default="", help="the dataset's name (default: the first file's stem)")
    q = datasets.add_parser("list", help="list datasets (latest versions)")
    _add_client_options(q, "datasets_list")
    for verb, help_text in (
        ("show", "a dataset's files: symbols, timeframes, rows, range, sha256"),
        ("delete", "delete every version of a dataset"),
    ):
        q = datasets.add_parser(verb, help=help_text)
        _add_client_options(q, f"datasets_{verb}")
        q.add_argument("name", help="the dataset's name (show: also NAME@SHA256)")

    from services.cli_kinds import add_verbs

    add_verbs(sub, _add_client_options)

    p = client("predict", "download a model and print its signal for every bar of a file")
    p.add_argument("name", help="strategy/SYMBOLS_TFS[_vN]; without _vN: the latest")
    p.add_argument("--data", required=True, metavar="FILE", help="an OHLCV CSV or Parquet file")
    p.add_argument("--timezone", default="", help="IANA zone of the file's naive timestamps")
    p.add_argument("--csv", action="store_true", help="CSV on stdout (the default)")
    p.add_argument(
        "--cache-dir",
        default=_env("CACHE_DIR", ""),
        help="keep downloaded models here (default: a temporary directory, removed after)",
    )

    p = sub.add_parser("health", help="check a server's grpc.health.v1 status")
    p.add_argument("address", help="HOST:PORT")
    p.add_argument("--service", default="", help="service name (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0)
    _add_security(p)
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("demo", help="start an orchestrator and a trainer, train, stop them")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--state-dir", default="demo-state")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except ValueError as exc:  # configuration that cannot work, e.g. a missing TLS file
        print(f"trainwire {args.command}: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIGURATION
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
