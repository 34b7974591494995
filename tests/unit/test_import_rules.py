"""The dependency rules the layout promises, checked on the source: the pipeline, progress and
artifact code import nothing from services or gRPC, ``shared`` imports nothing from services,
and the two services meet only in ``shared`` and on the wire (neither imports the other)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(folder)
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("shared/pipeline", ("services", "grpc", "shared.rpc", "shared.client")),
        ("shared/progress", ("services", "grpc", "shared.rpc")),
        ("shared/artifacts", ("services", "grpc", "shared.rpc")),
        ("services/trainer", ("services.orchestrator",)),
        ("services/orchestrator", ("services.trainer",)),
        ("shared", ("services",)),
    ],
)
def test_no_forbidden_imports(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _modules(folder), f"{folder} has no modules"
    assert _offenders(folder, forbidden) == []
