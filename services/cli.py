"""The ``trainwire`` command: run the services, or act as a client of the orchestrator.

Exit codes of the client verbs: 0 succeeded, 1 job failed, 3 job cancelled, 4 orchestrator
unreachable, 5 request rejected (bad input), 6 other RPC error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.rpc.plumbing import Security

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED, EXIT_UNREACHABLE, EXIT_REJECTED, EXIT_RPC = 0, 1, 3, 4, 5, 6
EXIT_INTERRUPTED = 130


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRAINWIRE_{name}", default)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
        "--token", default=_env("TOKEN", ""), help="shared bearer token (env TRAINWIRE_TOKEN)"
    )


def _security(args: argparse.Namespace) -> Security:
    from shared.rpc.plumbing import Security

    security = Security(
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        tls_ca=Path(args.tls_ca) if args.tls_ca else None,
        token=args.token,
        server_name=args.tls_server_name,
    )
    security.validate()
    return security


# --- services -----------------------------------------------------------------------------------


def cmd_orchestrator(args: argparse.Namespace) -> int:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import serve

    nodes = tuple(args.node or [n for n in _env("NODES", "").split(",") if n])
    config = OrchestratorConfig(
        listen=args.listen,
        nodes=nodes,
        state_dir=Path(args.state_dir),
        advertise=args.advertise,
        security=_security(args),
    )
    asyncio.run(serve(config))
    return EXIT_OK


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
        security=_security(args),
    )
    asyncio.run(serve(config, grace_s=args.grace))
    return EXIT_OK


# --- client verbs -------------------------------------------------------------------------------


def _strategy_text(path: Path, epochs: int, seed: int | None) -> str:
    """The strategy file's text, with ``--epochs``/``--seed`` written into its training section."""
    text = path.read_text()
    if not epochs and seed is None:
        return text
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a strategy: the YAML document must be a mapping")
    training = doc.setdefault("training", {})
    if not isinstance(training, dict):
        raise ValueError("training: must be a mapping")
    if epochs:
        training["epochs"] = epochs
    if seed is not None:
        training["seed"] = seed
    return str(yaml.safe_dump(doc, sort_keys=False))


def cmd_train(args: argparse.Namespace) -> int:
    import grpc

    from services.follow import follow
    from shared.jobs import JobEvent, JobState
    from shared.rpc import plumbing, serde
    from shared.rpc.v1 import orchestrator_pb2_grpc, strategy_pb2

    request = strategy_pb2.TrainRequest()
    if args.strategy:
        try:
            request.strategy_yaml = _strategy_text(Path(args.strategy), args.epochs, args.seed)
        except (OSError, ValueError) as exc:
            print(f"--strategy {args.strategy}: {exc}", file=sys.stderr)
            return EXIT_REJECTED
    else:
        if not args.symbols or not args.timeframes:
            print("--symbols and --timeframes are required without --strategy", file=sys.stderr)
            return EXIT_REJECTED
        if args.epochs:
            request.strategy.training.epochs = args.epochs
        if args.seed is not None:
            request.strategy.training.seed = args.seed
    request.symbols.extend(args.symbols or ())
    request.timeframes.extend(args.timeframes or ())
    if args.bars:
        request.data.bars = args.bars
    if args.require_gpu:
        request.placement.require_gpu = True
    if args.node:
        request.placement.node = args.node

    channel = plumbing.create_sync_channel(args.orchestrator, _security(args))
    stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
    stream = stub.Train(request)

    job_id = ""

    def events() -> Iterator[JobEvent]:
        nonlocal job_id
        for message in stream:
            event = serde.event_from_proto(message)
            job_id = event.job_id
            yield event

    try:
        last = follow(events(), as_json=args.json)
    except grpc.RpcError as exc:
        return _rpc_exit(exc, args.orchestrator)
    except KeyboardInterrupt:
        stream.cancel()  # type: ignore[no-untyped-call]
        print(
            f"\ndetached; the job keeps running. Cancel it with: trainwire cancel {job_id}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        channel.close()
    if last is None:
        print("the stream ended before the job finished", file=sys.stderr)
        return EXIT_RPC
    if not args.json:
        if last.state is JobState.SUCCEEDED and last.result and last.result.model:
            model = last.result.model
            print(
                f"Model stored: {model.name} (v{model.version}, {model.size_bytes} bytes, "
                f"sha256 {model.sha256})"
            )
            print(f"Test accuracy: {last.result.test_metrics.get('accuracy', float('nan')):.3f}")
        elif last.error:
            print(f"Job {last.job_id} {last.state.value}: {last.error.message}", file=sys.stderr)
    return {
        JobState.SUCCEEDED: EXIT_OK,
        JobState.CANCELLED: EXIT_CANCELLED,
    }.get(last.state, EXIT_FAILED)


def _rpc_exit(exc: object, target: str) -> int:
    import grpc

    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code is grpc.StatusCode.UNAVAILABLE:
        print(f"cannot reach the orchestrator at {target}: {details}", file=sys.stderr)
        return EXIT_UNREACHABLE
    name = code.name if code else "ERROR"
    print(f"{name}: {details}", file=sys.stderr)
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNIMPLEMENTED,
    ):
        return EXIT_REJECTED
    return EXIT_RPC


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
            return EXIT_UNREACHABLE
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{args.address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return EXIT_OK if serving else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(epochs=args.epochs, state_dir=Path(args.state_dir))


# --- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainwire", description="gRPC training service for trading-strategy models"
    )
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("orchestrator", help="run the orchestrator (the public endpoint)")
    p.add_argument("--listen", default=_env("LISTEN", "0.0.0.0:50051"), help="HOST:PORT")
    p.add_argument("--node", action="append", help="a trainer node HOST:PORT (repeatable)")
    p.add_argument("--state-dir", default=_env("STATE_DIR", "state"), help="models live here")
    p.add_argument(
        "--advertise",
        default=_env("ADVERTISE", ""),
        help="HOST:PORT trainers dial to upload models (default: from --listen)",
    )
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
    _add_security(p)
    p.set_defaults(func=cmd_trainer)

    p = sub.add_parser("train", help="submit a job and follow it to the end")
    p.add_argument("--orchestrator", default=_env("ORCHESTRATOR", "localhost:50051"))
    p.add_argument("--symbols", nargs="+", default=[], help="default: the strategy file's")
    p.add_argument("--timeframes", nargs="+", default=[], help="default: the strategy file's")
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bars", type=int, default=0, help="synthetic bars per symbol")
    p.add_argument("--strategy", help="a KTRDR v3 strategy YAML file")
    p.add_argument("--require-gpu", action="store_true")
    p.add_argument("--node", default="", help="run on this node")
    p.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    _add_security(p)
    p.set_defaults(func=cmd_train)

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
    _setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except ValueError as exc:  # configuration that cannot work, e.g. a missing TLS file
        print(f"trainwire {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
