"""The dependency rules the layout promises, checked on the source: the pipeline, progress,
artifact, backtest, strategy, optimizer and job-runner code import nothing from services or gRPC,
``shared`` imports nothing from services, the two services meet only in ``shared`` and on the
wire (neither imports the other), protobuf and grpc appear only at the edges (servicers and
server wiring, the trainer client and the trainer's own clients of the orchestrator, the HTTP
API, serde and the SDK), and no module-level import cycle exists."""

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
        ("shared/backtest", ("services", "grpc", "shared.rpc", "shared.client", "optuna")),
        ("shared/strategies", ("services", "grpc", "shared.rpc", "shared.client")),
        ("shared/optimize", ("services", "grpc", "shared.rpc", "shared.client")),
        ("shared/runs", ("services", "grpc", "shared.rpc", "shared.client")),
        ("services/trainer", ("services.orchestrator",)),
        ("services/orchestrator", ("services.trainer",)),
        ("shared", ("services",)),
    ],
)
def test_no_forbidden_imports(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _modules(folder), f"{folder} has no modules"
    assert _offenders(folder, forbidden) == []


WIRE = ("grpc", "google.protobuf", "shared.rpc.v1")
EDGES = {
    "services/orchestrator": (
        "servicer*.py",
        "server.py",
        "upload.py",
        "datasets.py",  # the UploadDataset receiver
        "trainer_client.py",
        "http_*.py",
        "pages.py",  # page tokens of the servicers' list replies (typed on Message)
    ),
    "services/trainer": (
        "servicer.py",
        "server.py",
        "registration.py",
        "uploader.py",
        "configuration_upload.py",
        "model_fetch.py",
        "datasets.py",  # fetches uploaded datasets from the orchestrator
    ),
}


def _is_edge(path: Path) -> bool:
    for folder, patterns in EDGES.items():
        if path.parent == ROOT / folder:
            return any(path.match(pattern) for pattern in patterns)
    relative = path.relative_to(ROOT).as_posix()
    return relative.startswith(("shared/rpc/", "shared/client/"))


def test_protobuf_and_grpc_only_at_the_edges() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("shared", "services")
        for path in _modules(folder)
        if not _is_edge(path)
        for name in sorted(_imports(path))
        if any(name == w or name.startswith(f"{w}.") for w in WIRE)
    ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports when it is imported (not in functions or under
    ``if TYPE_CHECKING``); ``from pkg import submodule`` depends on the submodule."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = package[: len(package) - (node.level - 1)]
                base = ".".join([*prefix, base] if base else prefix)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            out.update(subs)
            if len(subs) < len(node.names) and base in known:
                out.add(base)
    return out


def test_no_import_cycles() -> None:
    paths = [p for folder in ("shared", "services") for p in _modules(folder)]
    paths = [p for p in paths if "rpc/v1" not in p.as_posix()]
    known = {_module_name(p) for p in paths}
    graph = {_module_name(p): _top_level_imports(p, known) - {_module_name(p)} for p in paths}
    state: dict[str, int] = {}
    trail: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        trail.append(module)
        for target in sorted(graph[module]):
            if state.get(target, 0) == 0:
                visit(target)
            elif state[target] == 1:
                cycles.append([*trail[trail.index(target) :], target])
        trail.pop()
        state[module] = 2

    for module in sorted(graph):
        if state.get(module, 0) == 0:
            visit(module)
    assert cycles == []
