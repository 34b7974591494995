"""The committed generated code matches protos/: editing a .proto without `make protos` fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "protoc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_detects_a_stale_file(tmp_path: Path) -> None:
    """The check itself can fail: a tampered copy of the tree is reported stale."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "protos", copy / "protos")
    shutil.copytree(ROOT / "shared" / "rpc" / "v1", copy / "shared" / "rpc" / "v1")
    shutil.copytree(ROOT / "tools", copy / "tools")
    stub = copy / "shared" / "rpc" / "v1" / "progress_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    result = subprocess.run(
        [sys.executable, str(copy / "tools" / "protoc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "progress_pb2.pyi" in result.stdout
