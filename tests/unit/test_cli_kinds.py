"""`trainwire backtest|optimize|strategies|configurations`: flag values that cannot work exit 2
before anything is sent, the spec files in strategies/ load, the live display's trial and
candle bars and best-parameters table, plain mode's filter, the end-of-run summaries."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from services import cli, report_kinds
from services.exit_codes import ExitCode
from services.follow import follow
from services.follow_kinds import JobRenderer, breadcrumb
from services.optimize_spec import load_spec, merged
from shared.jobs import EventKind, JobEvent, JobState
from shared.progress.update import ItemCounter
from shared.results import (
    BacktestSummary,
    ConfigurationRef,
    OptimizationSummary,
    OptimizerProgress,
    WindowSummary,
)

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = ["--orchestrator", "127.0.0.1:9"]  # never dialled: flags fail first
JOB = "0123456789abcdef"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--param",
          "fast"], "--param 'fast': write NAME=VALUE"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--param",
          "fast=5", "--param", "fast=6"], "given twice"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "MSFT", "--timeframes", "1d"],
         "one market"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--data", "m",
          "--commission", "-1"], "--commission -1: percent of the traded value"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d",
          "--stop-loss", "5"], "--stop-loss 5: a fraction of the entry price"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--size", "3"],
         "with --units"),
        (["backtest", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--data", "m",
          "--bars", "100"], "needs --synthetic"),
        (["backtest", "default/GOOG_1d", "--param", "fast=5"], "stored model"),
        (["optimize", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d"],
         "at least one --param"),
        (["optimize", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--param",
          "fast=5:20", "--walk-forward", "500"], "TRAIN:TEST[:GAP][:anchored]"),
        (["optimize", "sma_crossover", "--symbols", "GOOG", "--timeframes", "1d", "--param",
          "fast=5:20", "--trials", "0"], "--trials 0: the trial budget must be > 0"),
        (["optimize", "--param", "fast=5:20"], "name the strategy"),
        (["optimize", "--spec", "/nonexistent.yaml"], "--spec /nonexistent.yaml"),
    ],
)  # fmt: skip
def test_bad_flags_exit_2_saying_what_to_change(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main([*argv, *UNREACHABLE])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_CONFIGURATION, err
    assert message in err and err.startswith(f"trainwire {argv[0]}: ")


def test_the_shipped_specs_load_and_flags_override_them() -> None:
    sma = load_spec(str(ROOT / "strategies" / "optimize_sma_crossover.yaml"))
    assert (sma.strategy, sma.symbols, sma.timeframes) == ("sma_crossover", ["GOOG"], ["1d"])
    assert sma.space == {"fast": "5:40:5", "slow": (20.0, 120.0, 20.0), "ma": ["sma", "ema"]}
    walk = sma.options["walk_forward"]
    assert (walk.train_bars, walk.test_bars, walk.gap_bars, walk.anchored) == (500, 250, 5, False)
    assert sma.options["sampler"] == "tpe" and sma.options["seed"] == 7
    rsi = load_spec(str(ROOT / "strategies" / "optimize_rsi_reversion_eurusd.yaml"))
    assert rsi.options["objective"] == "Calmar Ratio" and rsi.options["parallelism"] == 2
    assert rsi.options["walk_forward"].anchored

    args = cli.build_parser().parse_args(
        ["optimize", "--spec", str(ROOT / "strategies" / "optimize_sma_crossover.yaml"),
         "--sampler", "grid", "--trials", "all", "--param", "fast=10,20", "--data", "market"]
    )  # fmt: skip
    spec = merged(args)
    assert spec.options["sampler"] == "grid" and spec.options["trials"] is None
    assert spec.space["fast"] == "10,20" and spec.space["ma"] == ["sma", "ema"]


def ev(seq: int, kind: EventKind = EventKind.DETAIL, **fields: object) -> JobEvent:
    state = fields.pop("state", JobState.RUNNING)
    assert isinstance(state, JobState)
    return JobEvent(job_id=JOB, seq=seq, time=float(seq), state=state, kind=kind, **fields)  # type: ignore[arg-type]


def optimization() -> Iterator[JobEvent]:
    step: dict[str, Any] = {"step_total": 4, "step_index": 2, "step_name": "Optimizing"}
    yield ev(1, EventKind.STEP, step_index=1, step_total=4, step_name="Loading market data",
             message="Loading market data")  # fmt: skip
    yield ev(2, EventKind.STEP, message="Optimizing", percentage=25.0, **step)
    best = -math.inf
    for i, (fast, value) in enumerate(((5, 0.42), (10, 0.79), (15, 0.48)), start=1):
        yield ev(10 * i, items=ItemCounter(name="candles", current=1074, total=2148),
                 stage="trades", message=f"Trial {i - 1} — candle 1,074/2,148 (50%) [trades]",
                 percentage=25 + 15 * i, **step)  # fmt: skip
        best = max(best, value)
        o = OptimizerProgress(iteration=i, total_iterations=11, current_score=value,
                              best_score=best, objective="Sharpe Ratio",
                              best_params={"fast": "10" if i > 1 else "5", "slow": "20"},
                              current_params={"fast": str(fast), "slow": "20"})  # fmt: skip
        yield ev(10 * i + 1, EventKind.TRIAL, optimizer=o, message=f"Trial {i}/11",
                 percentage=26 + 15 * i, **step)  # fmt: skip


def test_the_live_display_shows_trials_best_params_then_candles() -> None:
    log = io.StringIO()
    console = Console(file=log, width=100, force_terminal=True, color_system=None)
    r = JobRenderer(console)
    for e in optimization():
        r.update(e)
    out = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    out.print(r.progress.get_renderable())
    lines = [line.rstrip() for line in out.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    names = [line.split()[0] for line in lines if line.strip()]
    assert names[:4] == ["Overall", "Step", "Steps", "Trials"] and names[-1] == "Candles", lines
    crumbs = next(line for line in lines if line.startswith("Steps"))
    assert crumbs.endswith("✓ Loading market data › Optimizing › 2 more"), crumbs
    assert next(line for line in lines if line.startswith("Step ")).endswith("Optimizing")
    trials = next(line for line in lines if line.startswith("Trials"))
    assert re.search(r"3/11 .*best Sharpe Ratio 0\.79 · current 0\.48", trials), trials
    table = lines[names.index("best") : names.index("Candles")]
    assert re.search(r"fast +10 +15", "\n".join(table)), lines
    assert re.search(r"50% +1,074/2,148 · trades$", lines[-1]), lines
    notes = log.getvalue()
    assert "trial 1: new best Sharpe Ratio 0.42" in notes and "trial 2: new best" in notes
    assert "trial 3: new best" not in notes


def test_plain_mode_prints_trials_not_the_candles_between_them() -> None:
    out = io.StringIO()
    follow(optimization(), as_json=False, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"job {JOB}"
    assert sum("Trial " in line and "/11" in line for line in lines) == 3
    assert sum("candle" in line for line in lines) == 1  # the first, before any trial ended


def test_breadcrumb_names_what_it_knows() -> None:
    assert breadcrumb({1: "Load", 2: "Opt"}, 2, 2) == "✓ Load › Opt"
    assert breadcrumb({3: "Validate"}, 3, 4) == "Validate › 1 more"


STATS = {"Return [%]": 12.5, "Buy & Hold Return [%]": 20.0, "Sharpe Ratio": 0.8,
         "Max. Drawdown [%]": -9.5, "# Trades": 14.0, "Win Rate [%]": math.nan,
         "Exposure Time [%]": 55.0}  # fmt: skip


def test_the_stats_table_sets_return_beside_buy_and_hold_and_dashes_undefined() -> None:
    lines = report_kinds.backtest_summary(
        BacktestSummary(
            strategy="sma_crossover",
            params={"fast": "10"},
            symbol="GOOG",
            timeframe="1d",
            stats=STATS,
            candles=2148,
        )
    )
    text = "\n".join(lines)
    assert lines[0] == "Backtest sma_crossover (fast=10) on GOOG 1d · 2,148 candles"
    assert re.search(r"Return +12\.50 %", text) and "(strategy -7.50 points)" in text
    assert re.search(r"Win Rate +-$", text, re.M) and re.search(r"# Trades +14$", text, re.M)


def test_the_optimization_summary_gives_oos_the_verdict_and_the_configuration() -> None:
    window = WindowSummary(index=1, train_start=0, train_end=1, test_start=2, test_end=3,
                           overfit=True)  # fmt: skip
    summary = OptimizationSummary(
        strategy="sma_crossover", best_params={"fast": "10", "slow": "20"}, best_score=0.79,
        sampler="tpe", seed=7, in_sample=STATS,
        out_of_sample={**STATS, "Sharpe Ratio": 0.1}, windows=(window, window), overfit=True,
        configuration=ConfigurationRef(name="sma_crossover/GOOG_1d_v2", strategy="sma_crossover",
                                       version=2, sha256="ab" * 32, size_bytes=10),
    )  # fmt: skip
    lines = report_kinds.optimization_summary(summary)
    text = "\n".join(lines)
    flat = " ".join(line.strip() for line in lines)
    assert "Best sma_crossover parameters (highest Sharpe Ratio 0.79; tpe" in text
    assert re.search(r"fast +10", text) and "seed 7" in text
    assert re.search(r"Sharpe +0\.80 +0\.10", text)
    assert "OVERFIT: out-of-sample Sharpe Ratio 0.1 falls far below in-sample 0.8" in flat
    assert "(2 of 2 windows flagged)" in flat
    assert "trainwire configurations download sma_crossover/GOOG_1d_v2" in text


def test_a_training_job_looks_as_it_always_did() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    r = JobRenderer(console)
    common: dict[str, Any] = {"step_index": 9, "step_total": 12, "step_name": "Training model"}
    r.update(ev(1, EventKind.STEP, message="Training model", **common))
    r.update(ev(2, EventKind.BATCH, epoch=1, total_epochs=3, batch=10, total_batches=50,
                message="Epoch 1/3 · Batch 10/50", **common))  # fmt: skip
    out = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    out.print(r.progress.get_renderable())
    names = [line.split()[0] for line in out.file.getvalue().splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert names == ["Overall", "Step", "Epoch", "Batch"]


def test_a_cancelled_optimization_still_shows_the_trials_it_finished(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services import commands
    from shared.jobs import JobError
    from shared.results import TrialSummary

    partial = OptimizationSummary(
        strategy="sma_crossover", best_params={"fast": "10"}, best_score=0.5, sampler="tpe",
        trials=(TrialSummary(number=0, params={"fast": "10"}, score=0.5, state="complete"),),
    )  # fmt: skip
    last = ev(9, EventKind.LIFECYCLE, state=JobState.CANCELLED, optimize_result=partial,
              error=JobError(code="CANCELLED", message="cancelled: enough"))  # fmt: skip
    commands._summary(last)
    out, err = capsys.readouterr()
    assert "Best sma_crossover parameters (highest Sharpe Ratio 0.5; tpe, 1 of 1" in out
    assert f"Job {JOB} cancelled: cancelled: enough" in err


def test_a_finished_backtest_fills_its_candle_bar() -> None:
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    r = JobRenderer(console)
    step: dict[str, Any] = {"step_index": 2, "step_total": 3, "step_name": "Backtesting"}
    r.update(ev(1, items=ItemCounter(name="candles", current=0, total=2148), stage="signals",
                message="candle 0/2,148 (0%) [signals]", **step))  # fmt: skip
    r.update(ev(2, EventKind.LIFECYCLE, state=JobState.SUCCEEDED, percentage=100.0,
                message="Backtest done", **step))  # fmt: skip
    out = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    out.print(r.progress.get_renderable())
    lines = [line.rstrip() for line in out.file.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert re.search(r"^Candles .* 100% +2,148/2,148 · done$", lines[-1]), lines
    assert lines[2] == "Steps      Backtesting › 1 more", lines


def test_json_lists_write_undefined_numbers_as_null() -> None:
    from services import commands

    line = commands.json_line(ConfigurationRef(name="a/B_1d_v1", strategy="a", version=1,
                                               sha256="", size_bytes=0))  # fmt: skip
    assert '"out_of_sample_score": null' in line
