"""`trainwire train|submit` data flags and the SDK's ``data=``: the request each one sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import build_parser
from services.commands import _request_options
from shared.client import DataSource, DataSpec, data
from shared.client.convert import build_request
from shared.rpc.v1 import strategy_pb2 as spb
from shared.strategy_yaml import parse_strategy_yaml

STRATEGY = Path(__file__).resolve().parents[2] / "strategies" / "rsi_mean_reversion.yaml"


def request(*argv: str) -> spb.TrainRequest:
    args = build_parser().parse_args(["train", "--symbols", "EURUSD", "--timeframes", "1h", *argv])
    return build_request(symbols=args.symbols, timeframes=args.timeframes, **_request_options(args))


def test_data_dir_with_range_and_timezone_reads_files_on_the_trainer() -> None:
    msg = request("--data", "fx", "--start", "2017-06-01", "--end", "2017-12-31",
                  "--timezone", "Europe/London")  # fmt: skip
    assert msg.data.source == spb.DATA_SOURCE_KIND_DIRECTORY
    assert (msg.data.path, msg.data.start, msg.data.end) == ("fx", "2017-06-01", "2017-12-31")
    assert msg.data.timezone == "Europe/London"
    assert not msg.data.HasField("seed") and msg.data.bars == 0


def test_dataset_flag_names_an_uploaded_dataset() -> None:
    msg = request("--dataset", "eurusd-2018")
    assert msg.data.source == spb.DATA_SOURCE_KIND_DATASET
    assert msg.data.dataset == "eurusd-2018" and msg.data.path == ""


def test_synthetic_is_explicit_and_takes_bars_and_seed() -> None:
    msg = request("--synthetic", "--bars", "5000", "--seed", "3")
    assert msg.data.source == spb.DATA_SOURCE_KIND_SYNTHETIC
    assert (msg.data.bars, msg.data.seed) == (5000, 3)
    assert msg.strategy.training.seed == 3


def test_no_data_flag_names_no_source_so_the_server_decides() -> None:
    # SYNTH symbols train on the synthetic market; any other symbol is refused by the server.
    msg = request("--bars", "1200")
    assert msg.data.source == spb.DATA_SOURCE_KIND_UNSPECIFIED and msg.data.bars == 1200
    assert not request().HasField("data")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", ".", "--bars", "100"], "--bars sets the synthetic market's length"),
        (["--dataset", "x", "--bars", "100"], "needs --synthetic"),
        (["--timezone", "UTC"], "--timezone is for the naive timestamps"),
        (["--synthetic", "--timezone", "UTC"], "--timezone is for the naive timestamps"),
    ],
)
def test_flags_that_do_not_fit_the_source_say_so(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        request(*argv)


def test_only_one_source_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        request("--data", ".", "--dataset", "x")
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_sdk_data_helpers_are_typed_dataspecs() -> None:
    spec = data.directory("fx", start="2017-06-01", timezone="America/New_York")
    assert isinstance(spec, DataSpec) and spec.source is DataSource.DIRECTORY
    msg = build_request(symbols=["EURUSD"], timeframes=["1h"], data=spec)
    assert (msg.data.path, msg.data.timezone) == ("fx", "America/New_York")
    msg = build_request(symbols=["X"], timeframes=["1h"], data=data.synthetic(bars=900, seed=5))
    assert (msg.data.source, msg.data.bars, msg.data.seed) == (
        spb.DATA_SOURCE_KIND_SYNTHETIC, 900, 5,
    )  # fmt: skip
    msg = build_request(symbols=["X"], timeframes=["1h"], data=data.dataset("d"), epochs=2)
    assert msg.data.dataset == "d" and msg.strategy.training.epochs == 2


def test_sdk_refuses_data_that_contradicts_itself() -> None:
    with pytest.raises(ValueError, match="timezone applies to files"):
        build_request(symbols=["X"], timeframes=["1h"],
                      data=DataSpec(source=DataSource.SYNTHETIC, timezone="UTC"))  # fmt: skip
    with pytest.raises(ValueError, match="dataset's name"):
        build_request(symbols=["X"], timeframes=["1h"], data=DataSpec(source=DataSource.DATASET))
    with pytest.raises(ValueError, match="bars sets the synthetic"):
        build_request(symbols=["X"], timeframes=["1h"], data=data.directory("."), bars=10)
    with pytest.raises(ValueError, match="inside data="):
        build_request(symbols=["X"], timeframes=["1h"], data=data.directory("."), start="2020")


def test_label_threshold_flag_sets_the_labels_of_either_strategy_form(tmp_path: Path) -> None:
    assert request("--data", ".", "--label-threshold", "auto").strategy.labels.auto_threshold
    fixed = request("--data", ".", "--label-threshold", "0.004").strategy.labels
    assert fixed.threshold == pytest.approx(0.004) and not fixed.auto_threshold
    # In a strategy file it replaces the file's threshold, whichever spelling the file used.
    strategy = tmp_path / "s.yaml"
    strategy.write_text(STRATEGY.read_text())
    assert "zigzag_threshold" in strategy.read_text()
    msg = request("--data", ".", "--strategy", str(strategy), "--label-threshold", "0.004")
    parsed = parse_strategy_yaml(msg.strategy_yaml).strategy.labels
    assert parsed.threshold == pytest.approx(0.004) and not parsed.auto_threshold
    assert "zigzag_threshold" not in msg.strategy_yaml
    with pytest.raises(ValueError, match=r"a fraction such as 0\.004, or auto"):
        request("--label-threshold", "big")
    with pytest.raises(ValueError, match="between 0 and 1"):
        request("--label-threshold", "2")
