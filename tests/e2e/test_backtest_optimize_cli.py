"""Backtests and optimizations as a user runs them: real orchestrator and trainer processes, the
real `trainwire` command and the SDK, on the GOOG (daily) and EURUSD (hourly) files the
backtesting package ships and on the synthetic market; bad input exits with the right code and
a message saying what to change."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.client import AsyncClient, Client, ConfigurationRef, JobEvent, JobKind, JobState, data
from shared.strategies import list_strategies
from tests.support.market_files import market_dir
from tests.support.processes import free_port, service, wait_serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
GOOG_BUY_AND_HOLD = 703.458  # GOOG.csv, first open of 2004-08-20 to the last close, in percent
RULES = [s.name for s in list_strategies()]


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An orchestrator whose trainer has GOOG.csv and EURUSD.csv in --data-dir/market."""
    tmp = tmp_path_factory.mktemp("kinds")
    market_dir(tmp / "data")
    orch, trainer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    trainer_args = [
        "trainer",
        "--listen",
        trainer,
        "--work-dir",
        str(tmp / "w"),
        "--data-dir",
        str(tmp / "data"),
    ]
    orch_args = ["orchestrator", "--listen", orch, "--node", trainer, "--state-dir", str(tmp / "s")]
    with (
        service(trainer_args, tmp / "t.log") as t,
        service(orch_args, tmp / "o.log") as o,
    ):
        wait_serving(trainer, t)
        wait_serving(orch, o)
        yield orch


def trainwire(orchestrator: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args, "--orchestrator", orchestrator],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def events_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr + done.stdout[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_strategies_lists_every_rule_strategy_with_its_parameters(orchestrator: str) -> None:
    listed = [
        json.loads(line)
        for line in trainwire(orchestrator, "strategies", "--json").stdout.splitlines()
    ]
    assert sorted(s["name"] for s in listed) == sorted(RULES)
    sma = next(s for s in listed if s["name"] == "sma_crossover")
    fast = next(p for p in sma["params"] if p["name"] == "fast")
    assert (fast["type"], fast["default"], fast["low"], fast["high"]) == ("int", "10", 2, 500)
    table = trainwire(orchestrator, "strategies").stdout
    assert "PARAM" in table and "pierce_depth" in table and "volume_spike_threshold" in table


@pytest.mark.parametrize("strategy", RULES)
def test_each_rule_strategy_backtests_goog_daily(orchestrator: str, strategy: str) -> None:
    events = events_of(
        trainwire(
            orchestrator,
            "backtest",
            strategy,
            "--symbols",
            "GOOG",
            "--timeframes",
            "1d",
            "--data",
            "market",
            "--commission",
            "0.1",
            "--json",
        )
    )
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    candles = [e["items"] for e in events if e.get("items", {}).get("name") == "candles"]
    assert candles and all(c["total"] == 2148 for c in candles)
    assert {e.get("stage") for e in events if e.get("items", {}).get("name") == "candles"} <= {
        "signals",
        "trades",
    }
    last = events[-1]
    assert last["state"] == "succeeded", last
    result = last["backtest_result"]
    assert result["strategy"] == strategy and result["candles"] == 2148
    assert result["settings"]["commission_pct"] == pytest.approx(0.001)
    assert result["stats"]["Buy & Hold Return [%]"] == pytest.approx(GOOG_BUY_AND_HOLD, rel=1e-3)
    assert result["data"]["source"] == "directory"
    assert result["stats"]["# Trades"] == result["trades_total"]


def test_a_backtest_on_a_pipe_prints_lines_then_the_stats_table(orchestrator: str) -> None:
    done = trainwire(
        orchestrator,
        "backtest",
        "sma_crossover",
        "--symbols",
        "GOOG",
        "--timeframes",
        "1d",
        "--data",
        "market",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("job ")
    summary = out[out.index(next(line for line in out if line.startswith("Backtest "))) :]
    assert summary[0].startswith("Backtest sma_crossover (") and "fast=10" in summary[0]
    assert "on GOOG 1d · 2,148 candles" in summary[0]
    labels = [line.split("  ")[0] for line in summary[3:]]
    assert labels == [
        "Return",
        "Buy & Hold",
        "Return (ann.)",
        "Sharpe",
        "Sortino",
        "Calmar",
        "Max DD",
        "# Trades",
        "Win Rate",
        "Profit Factor",
        "SQN",
        "Exposure",
    ]
    assert "703.46 %" in summary[4] and "points)" in summary[4]


def test_eurusd_hourly_and_the_synthetic_market(orchestrator: str) -> None:
    fx = events_of(
        trainwire(
            orchestrator,
            "backtest",
            "rsi_reversion",
            "--symbols",
            "EURUSD",
            "--timeframes",
            "1h",
            "--data",
            "market",
            "--no-short",
            "--json",
        )
    )[-1]
    assert fx["state"] == "succeeded" and fx["backtest_result"]["candles"] == 5000
    assert fx["backtest_result"]["settings"]["allow_short"] == 0.0
    synth = events_of(
        trainwire(
            orchestrator,
            "backtest",
            "bollinger_breakout",
            "--symbols",
            "SYNTH",
            "--timeframes",
            "1h",
            "--json",
        )
    )[-1]
    assert synth["state"] == "succeeded"
    assert synth["backtest_result"]["data"]["source"] == "synthetic"
    acme = events_of(
        trainwire(
            orchestrator,
            "backtest",
            "liquidity_sweep",
            "--symbols",
            "ACME",
            "--timeframes",
            "1h",
            "--synthetic",
            "--bars",
            "4000",
            "--json",
        )
    )[-1]
    assert acme["backtest_result"]["candles"] == 4000


def optimize(orchestrator: str, *flags: str) -> dict[str, Any]:
    events = events_of(
        trainwire(
            orchestrator,
            "optimize",
            "sma_crossover",
            "--symbols",
            "GOOG",
            "--timeframes",
            "1d",
            "--data",
            "market",
            "--param",
            "fast=5:20:5",
            "--param",
            "slow=20:60:20",
            "--constraint",
            "fast < slow",
            "--walk-forward",
            "500:250",
            "--json",
            *flags,
        )
    )
    trials = [e["optimizer"] for e in events if e.get("kind") == "trial"]
    assert trials and all(t["objective"] == "Sharpe Ratio" for t in trials)
    last = events[-1]
    assert last["state"] == "succeeded", last
    result: dict[str, Any] = last["optimize_result"]
    result["trial_events"] = trials
    return result


def test_grid_optimization_with_walk_forward_covers_the_grid(orchestrator: str) -> None:
    result = optimize(orchestrator, "--sampler", "grid", "--trials", "all")
    feasible = [(f, s) for f in (5, 10, 15, 20) for s in (20, 40, 60) if f < s]
    done = {
        (int(t["params"]["fast"]), int(t["params"]["slow"]))
        for t in result["trials"]
        if t["state"] == "complete"
    }
    assert done == set(feasible)
    best = max(t["score"] for t in result["trials"] if t["state"] == "complete")
    assert result["best_score"] == pytest.approx(best)
    assert result["sampler"] == "grid" and len(result["windows"]) >= 2
    assert result["out_of_sample"] and "Sharpe Ratio" in result["in_sample"]
    first = result["trial_events"][0]
    assert first["iteration"] == 1 and first["total_iterations"] >= len(feasible)


def test_tpe_with_a_seed_gives_the_same_best_parameters_twice(orchestrator: str) -> None:
    runs = [
        optimize(orchestrator, "--sampler", "tpe", "--trials", "8", "--seed", "7") for _ in range(2)
    ]
    assert runs[0]["best_params"] == runs[1]["best_params"]
    assert [t["params"] for t in runs[0]["trials"]] == [t["params"] for t in runs[1]["trials"]]
    assert runs[0]["seed"] == 7


@pytest.mark.parametrize(
    ("spec", "strategy", "market"),
    [
        ("optimize_sma_crossover.yaml", "sma_crossover", "GOOG_1d"),
        ("optimize_rsi_reversion_eurusd.yaml", "rsi_reversion", "EURUSD_1h"),
    ],
)
def test_the_spec_file_runs_and_the_summary_gives_the_verdict(
    orchestrator: str, spec: str, strategy: str, market: str
) -> None:
    done = trainwire(
        orchestrator,
        "optimize",
        "--spec",
        str(ROOT / "strategies" / spec),
        "--data",
        "market",
        "--trials",
        "6",
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"Best {strategy} parameters (highest " in text
    assert "In-sample vs out-of-sample (" in text and "Verdict: " in text
    assert f"Configuration stored: {strategy}/{market}_v" in text


def test_the_sdk_backtests_and_optimizes(orchestrator: str) -> None:
    with Client(orchestrator) as tw:
        names = {s.name for s in tw.strategies()}
        assert names == set(RULES)
        events = list(
            tw.backtest(
                "sma_crossover",
                ["GOOG"],
                ["1d"],
                params={"fast": 12},
                data=data.directory("market"),
                slippage_bps=2.0,
            )
        )
        last = events[-1]
        assert last.state is JobState.SUCCEEDED and last.backtest_result is not None
        assert last.backtest_result.params["fast"] == "12"
        assert any(e.items is not None and e.items.name == "candles" for e in events)
        job = tw.submit_backtest(
            "rsi_reversion", ["EURUSD"], ["1h"], data=data.directory("market", start="2017-10-01")
        )
        watched = list(tw.watch(job.job_id))
        assert watched[-1].state is JobState.SUCCEEDED
        polled = tw.job(job.job_id)
        assert polled.kind is JobKind.BACKTEST and polled.backtest_result is not None
        assert polled.backtest_result.stats == watched[-1].backtest_result.stats  # type: ignore[union-attr]
        assert (polled.step_index, polled.step_total) == (3, 3) and polled.updated_at > 0
        found = list(
            tw.optimize(
                "sma_crossover",
                ["GOOG"],
                ["1d"],
                data=data.directory("market"),
                space={"fast": (5, 20, 5), "slow": (30, 60, 30)},
                sampler="grid",
                trials=None,
                constraints=["fast < slow"],
            )
        )
        result = found[-1].optimize_result
        assert result is not None and len(result.trials) == 8
        assert math.isfinite(result.best_score) and set(result.best_params) >= {"fast", "slow"}
        submitted = tw.submit_optimization(
            "sma_crossover", ["SYNTH"], ["1h"], space={"fast": "5:10"}, trials=3, seed=1
        )
        assert tw.job(submitted.job_id).kind is JobKind.OPTIMIZE
        assert list(tw.watch(submitted.job_id))[-1].state is JobState.SUCCEEDED
        snapshot = tw.job(submitted.job_id)
        assert snapshot.optimizer is not None and snapshot.optimizer.best_params
        assert snapshot.optimize_result is not None
        assert snapshot.optimize_result.best_params == snapshot.optimizer.best_params


GOOG = ["--symbols", "GOOG", "--timeframes", "1d", "--data", "market"]
SMA = ["sma_crossover", *GOOG]
REFUSED: list[tuple[list[str], int, str]] = [
    (["backtest", "smaa", *GOOG], 5, "known: "),
    (["backtest", *SMA, "--param", "fast=1"], 5, "params.fast"),
    (["backtest", *SMA, "--param", "speed=3"], 5, "params.speed"),
    (["backtest", *SMA, "--start", "2012-01-01", "--end", "2011-01-01"], 5, "data."),
    # A range the file has no bars in is found on the trainer: the job fails, saying so.
    (["backtest", *SMA, "--start", "2030-01-01"], 1, "between data.start and data.end"),
    (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d"], 5, "--data"),
    (["optimize", *SMA, "--param", "fast=30:5"], 2, "swap them"),
    (["optimize", *SMA, "--param", "nope=1:2"], 2, "its parameters: fast, slow, ma"),
    (["optimize", *SMA, "--param", "fast=5:10", "--trials", "0"], 2, "--trials 0"),
    (["optimize", *SMA, "--param", "fast=20:30", "--param", "slow=5:10", "--constraint",
      "fast < slow"], 5, "constraint"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "code", "says"), REFUSED)
def test_bad_input_is_refused_with_what_to_change(
    orchestrator: str, argv: list[str], code: int, says: str
) -> None:
    done = trainwire(orchestrator, *argv)
    assert done.returncode == code, done.stderr + done.stdout
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_best_configuration_is_stored_listed_shown_and_downloaded(
    orchestrator: str, tmp_path: Path
) -> None:
    result = optimize(orchestrator, "--sampler", "random", "--trials", "4", "--seed", "3")
    stored = result["configuration"]
    name = stored["name"]
    assert name.startswith("sma_crossover/GOOG_1d_v") and stored["params"] == result["best_params"]
    listed = trainwire(orchestrator, "configurations", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert name in [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    table = trainwire(orchestrator, "configurations", "list").stdout
    assert table.startswith("NAME") and name in table
    shown = trainwire(orchestrator, "configurations", "show", name)
    assert shown.returncode == 0 and f"sha256 {stored['sha256']}" in shown.stdout, shown.stderr
    document = json.loads(trainwire(orchestrator, "configurations", "show", name, "--json").stdout)
    assert document["strategy"] == "sma_crossover"
    got = trainwire(orchestrator, "configurations", "download", name, "--dest", str(tmp_path))
    assert got.returncode == 0, got.stderr
    path = Path(got.stdout.strip())
    assert path == tmp_path.joinpath(*name.split("/"), "configuration.json")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == stored["sha256"]
    missing = trainwire(orchestrator, "configurations", "show", "sma_crossover/NOPE_1d")
    assert missing.returncode == 5 and "NOT_FOUND" in missing.stderr


def test_the_async_sdk_optimizes_and_downloads_the_configuration(
    orchestrator: str, tmp_path: Path
) -> None:
    async def run() -> tuple[set[str], list[JobEvent], Path, ConfigurationRef]:
        async with AsyncClient(orchestrator) as tw:
            names = {s.name for s in await tw.strategies()}
            events = [
                e
                async for e in tw.optimize(
                    "sma_crossover", ["SYNTH"], ["1h"], space={"fast": (5, 15, 5)},
                    trials=3, seed=1, sampler="random",
                )
            ]  # fmt: skip
            result = events[-1].optimize_result
            assert result is not None and result.configuration is not None
            ref, _ = await tw.configuration(result.configuration.name)
            path = await tw.download_configuration(ref.name, tmp_path)
            job = await tw.submit_backtest("sma_crossover", ["SYNTH"], ["1h"], params={"fast": 5})
            assert [e async for e in tw.watch(job.job_id)][-1].state is JobState.SUCCEEDED
            return names, events, path, ref

    names, events, path, ref = asyncio.run(run())
    assert names == set(RULES)
    assert events[-1].state is JobState.SUCCEEDED
    assert sum(1 for e in events if e.optimizer is not None) >= 3
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.sha256


def test_a_stored_model_backtests_through_the_cli_and_the_sdk(orchestrator: str) -> None:
    trained = events_of(
        trainwire(
            orchestrator,
            "train",
            "--symbols",
            "GOOG",
            "--timeframes",
            "1d",
            "--data",
            "market",
            "--epochs",
            "3",
            "--label-threshold",
            "auto",
            "--json",
        )
    )[-1]
    assert trained["state"] == "succeeded", trained
    name = trained["result"]["model"]["name"]
    assert trained["result"]["backtest"]["symbol"] == "GOOG"  # its test split, vs holding
    done = events_of(trainwire(orchestrator, "backtest", name, "--data", "market", "--json"))
    last = done[-1]
    assert last["state"] == "succeeded", last
    result = last["backtest_result"]
    assert result["model"] == name and result["symbol"] == "GOOG"
    assert result["candles"] > 2000  # the whole file, not the test split
    assert result["stats"]["Buy & Hold Return [%]"] > 0
    with Client(orchestrator) as tw:
        events = list(tw.backtest(name.rsplit("_v", 1)[0], data=data.directory("market")))
    final = events[-1]
    assert final.state is JobState.SUCCEEDED, final.message
    assert final.backtest_result is not None and final.backtest_result.model == name
    assert final.backtest_result.stats["Return [%]"] == pytest.approx(result["stats"]["Return [%]"])
