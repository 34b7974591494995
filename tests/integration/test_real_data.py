"""Every example strategy trains on real market files as its header says.

Each ``trainwire train ... --data market`` line in a strategy's header is parsed and run
in-process through ``run_training`` (the request the CLI would build, cut to 2 epochs) against
a data directory holding the real GOOG.csv (daily) and EURUSD.csv (hourly) files. The CLI
itself is the end-to-end tests' concern.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from shared.cancellation import CancellationToken
from shared.pipeline.run import run_training
from shared.progress.update import ProgressUpdate, UpdateKind
from shared.rpc import serde
from shared.rpc.v1 import strategy_pb2 as spb
from tests.support.market_files import market_dir

pytestmark = pytest.mark.timeout(300)

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"


def _is_optimization_spec(path: Path) -> bool:
    """``trainwire optimize --spec`` files (a search ``space``), not training strategies."""
    document = yaml.safe_load(path.read_text())
    return isinstance(document, dict) and "space" in document


def _header_commands(verb: str = "train") -> list[tuple[str, list[str]]]:
    """(file, argv after ``trainwire VERB``) for every header command on real data."""
    commands = []
    for path in sorted(STRATEGIES.glob("*.yaml")):
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            text = line.lstrip("# ")
            if text.startswith(f"trainwire {verb} ") and "--data " in text:
                commands.append((path.name, shlex.split(text)[2:]))
    return commands


COMMANDS = _header_commands()


def test_every_strategy_says_how_to_train_it_on_real_data() -> None:
    training = {p.name for p in STRATEGIES.glob("*.yaml") if not _is_optimization_spec(p)}
    assert {name for name, _ in COMMANDS} == training
    assert len(COMMANDS) >= 4


def test_every_optimization_spec_says_how_to_run_it_on_real_data() -> None:
    specs = {p.name for p in STRATEGIES.glob("*.yaml") if _is_optimization_spec(p)}
    named = {name for name, argv in _header_commands("optimize") if "--spec" in argv}
    assert specs and named == specs


def _option(argv: list[str], flag: str) -> list[str]:
    """The values after ``flag`` up to the next option."""
    if flag not in argv:
        return []
    values = []
    for item in argv[argv.index(flag) + 1 :]:
        if item.startswith("--"):
            break
        values.append(item)
    return values


def _request(argv: list[str]) -> spb.TrainRequest:
    """What ``trainwire train`` sends for ``argv``, its strategy cut to 2 epochs."""
    (strategy_file,) = _option(argv, "--strategy")
    assert strategy_file.startswith("strategies/")
    doc = yaml.safe_load((STRATEGIES.parent / strategy_file).read_text())
    doc["training"]["epochs"] = 2
    (path,) = _option(argv, "--data")
    known = {"--strategy", "--symbols", "--timeframes", "--data"}
    assert {a for a in argv if a.startswith("--")} <= known, argv
    request = spb.TrainRequest(
        symbols=_option(argv, "--symbols"),
        timeframes=_option(argv, "--timeframes"),
        strategy_yaml=yaml.safe_dump(doc, sort_keys=False),
        data=spb.DataSpec(source=spb.DATA_SOURCE_KIND_DIRECTORY, path=path),
    )
    request.placement.device = "cpu"
    return request


@pytest.mark.parametrize(
    "argv", [argv for _, argv in COMMANDS], ids=[" ".join(argv[1:]) for _, argv in COMMANDS]
)
def test_a_header_command_trains_on_the_real_files(tmp_path: Path, argv: list[str]) -> None:
    data_dir = tmp_path / "data"
    market_dir(data_dir)
    request = serde.request_from_proto(_request(argv))
    updates: list[ProgressUpdate] = []
    outcome = run_training(
        request,
        work_dir=tmp_path / "work",
        progress=updates.append,
        cancel=CancellationToken(),
        data_dir=data_dir,
    )
    assert outcome.artifact_path.is_file()
    assert outcome.train_metrics["epochs_run"] <= 2
    provenance = outcome.data
    assert provenance is not None
    assert (provenance.source, provenance.location) == ("directory", "market")
    series = {(s.symbol, s.timeframe): s for s in provenance.series}
    assert set(series) == {(s, tf) for s in request.symbols for tf in request.timeframes}
    for s in provenance.series:
        assert s.file == f"{s.symbol}.csv" and s.rows > 100
        native = {"GOOG": "1d", "EURUSD": "1h"}[s.symbol]
        assert s.resampled_from == ("" if s.timeframe == native else native)
    # Every input the strategy names was computed on the request's timeframes.
    suffixes = {name.rpartition("@")[2] for name in outcome.feature_names if "@" in name}
    assert suffixes <= set(request.timeframes)
    if len(request.timeframes) > 1:
        assert suffixes == set(request.timeframes)
    assert outcome.assessment is not None
    assert any(u.kind is UpdateKind.STEP and "directory market" in u.message for u in updates)
