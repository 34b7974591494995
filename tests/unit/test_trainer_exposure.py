"""Which trainer configurations count as an open remote executor, refused at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.trainer.config import TrainerConfig
from services.trainer.server import check_exposure, create_server, is_loopback
from shared.rpc.plumbing import Security


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50052", True),
        ("127.0.0.2:0", True),
        ("[::1]:50052", True),
        ("localhost:50052", True),
        ("LocalHost:1", True),
        ("0.0.0.0:50052", False),
        ("[::]:50052", False),
        (":50052", False),
        ("10.0.0.5:50052", False),
        ("gpu-host:50052", False),
        ("localhost.example.com:50052", False),
    ],
)
def test_loopback_addresses(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


def _config(tmp_path: Path, listen: str, **fields: object) -> TrainerConfig:
    return TrainerConfig(listen=listen, work_dir=tmp_path / "w", **fields)  # type: ignore[arg-type]


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = tuple(tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem"))
    for path in paths:
        path.write_text("x")
    return paths  # type: ignore[return-value]


@pytest.mark.parametrize("listen", ["0.0.0.0:50052", "[::]:50052", "gpu-host:50052"])
def test_an_open_trainer_reachable_from_elsewhere_is_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ValueError, match="neither a token nor mTLS") as err:
        check_exposure(_config(tmp_path, listen))
    assert "TRAINWIRE_TOKEN" in str(err.value) and "--insecure" in str(err.value)
    cert, key, _ = _files(tmp_path)
    # Server-only TLS encrypts, but lets anyone call: still refused.
    with pytest.raises(ValueError):
        check_exposure(_config(tmp_path, listen, security=Security(tls_cert=cert, tls_key=key)))


def test_a_token_mtls_loopback_or_insecure_starts(tmp_path: Path) -> None:
    cert, key, ca = _files(tmp_path)
    check_exposure(_config(tmp_path, "0.0.0.0:50052", security=Security(token="t")))
    mtls = Security(tls_cert=cert, tls_key=key, tls_ca=ca)
    check_exposure(_config(tmp_path, "0.0.0.0:50052", security=mtls))
    check_exposure(_config(tmp_path, "127.0.0.1:0"))
    check_exposure(_config(tmp_path, "0.0.0.0:50052", insecure=True))


async def test_create_server_refuses_before_it_binds_or_writes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"refusing to serve 0\.0\.0\.0:0"):
        await create_server(_config(tmp_path, "0.0.0.0:0"))
    assert not (tmp_path / "w").exists()
