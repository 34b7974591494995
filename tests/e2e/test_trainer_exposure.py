"""``trainwire trainer`` as an operator starts it: reachable from other hosts only with a token
(from the environment or a file) or mTLS, or with an explicit ``--insecure``; a token typed on
the command line works but is warned about, since every local user sees it in ``ps``."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shared.rpc import plumbing
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
TOKEN = "e2e-token-0123456789"


@pytest.fixture(autouse=True)
def _no_inherited_security(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOKEN", "TOKEN_FILE", "INSECURE", "LISTEN", "TLS_CERT", "TLS_KEY", "TLS_CA"):
        monkeypatch.delenv(f"TRAINWIRE_{name}", raising=False)


def _trainwire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _trainer_args(tmp_path: Path, port: int, *extra: str) -> list[str]:
    return ["trainer", "--listen", f"0.0.0.0:{port}", "--work-dir", str(tmp_path / "w"), *extra]


def test_a_trainer_on_all_interfaces_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    done = _trainwire(*_trainer_args(tmp_path, free_port()))
    assert done.returncode == 2, done
    assert "refusing to serve 0.0.0.0:" in done.stderr
    for hint in ("TRAINWIRE_TOKEN", "--token-file", "--tls-ca", "--insecure"):
        assert hint in done.stderr, (hint, done.stderr)
    assert not (tmp_path / "w").exists()  # refused before anything was created


@pytest.fixture
def port() -> int:
    return free_port()


def _get_info(port: int, token: str) -> trainer_pb2.NodeInfo:
    security = plumbing.Security(token=token)
    with plumbing.create_sync_channel(f"127.0.0.1:{port}", security) as channel:
        reply: trainer_pb2.NodeInfo = trainer_pb2_grpc.TrainerStub(channel).GetInfo(
            trainer_pb2.GetInfoRequest(), timeout=10
        )
        return reply


@contextlib.contextmanager
def _serving(args: list[str], log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with service(args, log) as proc:
        wait_serving(f"127.0.0.1:{port}", proc)
        yield proc


def test_insecure_serves_all_interfaces_open_with_a_warning(tmp_path: Path, port: int) -> None:
    log = tmp_path / "trainer.log"
    with _serving(_trainer_args(tmp_path, port, "--insecure"), log, port):
        assert _get_info(port, "").slots == 1
    assert "--insecure" in log.read_text()


def test_insecure_from_the_environment(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINWIRE_INSECURE", "1")
    with _serving(_trainer_args(tmp_path, port), tmp_path / "trainer.log", port):
        assert _get_info(port, "").slots == 1


def test_a_token_from_the_environment_serves_and_is_required(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINWIRE_TOKEN", TOKEN)
    log = tmp_path / "trainer.log"
    with _serving(_trainer_args(tmp_path, port), log, port):
        assert _get_info(port, TOKEN).slots == 1
        with pytest.raises(grpc.RpcError) as err:
            _get_info(port, "")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "command line" not in log.read_text()


def test_a_token_file_serves(tmp_path: Path, port: int) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")  # as `echo $TOKEN > file` writes it
    token_file.chmod(0o600)
    args = _trainer_args(tmp_path, port, "--token-file", str(token_file))
    with _serving(args, tmp_path / "trainer.log", port):
        assert _get_info(port, TOKEN).slots == 1
        with pytest.raises(grpc.RpcError):
            _get_info(port, "wrong")


def test_a_token_on_the_command_line_works_but_is_warned_about(tmp_path: Path, port: int) -> None:
    log = tmp_path / "trainer.log"
    with _serving(_trainer_args(tmp_path, port, "--token", TOKEN), log, port):
        assert _get_info(port, TOKEN).slots == 1
    text = log.read_text()
    assert "WARNING" in text and "ps" in text and "--token-file" in text, text


def test_a_missing_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    done = _trainwire(*_trainer_args(tmp_path, free_port(), "--token-file", str(tmp_path / "no")))
    assert done.returncode == 2, done
    assert "--token-file" in done.stderr and str(tmp_path / "no") in done.stderr
