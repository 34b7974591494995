"""Regenerate the committed Python code for protos/ (``make protos``), or check it is fresh.

The proto file path equals the Python import path (``protos/shared/rpc/v1/x.proto`` →
``shared/rpc/v1/x_pb2.py``), so the generated imports need no rewriting. ``--check`` generates
into a temporary directory and fails if any committed file differs: stale code never ships.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = Path("shared/rpc/v1")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out_dir: Path) -> list[Path]:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p.relative_to(out_dir) for p in (out_dir / OUT_PACKAGE).iterdir())


def committed_files() -> list[Path]:
    return sorted(
        p.relative_to(ROOT) for p in (ROOT / OUT_PACKAGE).iterdir() if p.name.endswith(SUFFIXES)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generated = generate(out)
        if args.check:
            stale = [
                str(rel)
                for rel in generated
                if not (ROOT / rel).exists() or not filecmp.cmp(out / rel, ROOT / rel, False)
            ]
            extra = [str(rel) for rel in committed_files() if rel not in generated]
            if stale or extra:
                print("generated code is stale; run `make protos`:", *stale, *extra, sep="\n  ")
                return 1
            print(f"{len(generated)} generated files are fresh")
            return 0
        for rel in committed_files():
            if rel not in generated:
                (ROOT / rel).unlink()
        for rel in generated:
            shutil.copyfile(out / rel, ROOT / rel)
        print(f"wrote {len(generated)} files under {OUT_PACKAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
