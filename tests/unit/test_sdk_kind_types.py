"""The backtest and optimization SDK calls hold under ``mypy --strict``: typed options, so a
misspelt option or a wrong type is an error rather than a silently ignored keyword."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_sdk_types import check

GOOD = """
from pathlib import Path
from shared.client import AsyncClient, Client, ConfigurationRef, Job, JobEvent, StrategyInfo, data
from shared.optimize import ParamRange, WalkForward

def sync_use(tw: Client) -> float:
    infos: list[StrategyInfo] = tw.strategies(timeout=2.0)
    events: list[JobEvent] = list(tw.backtest(
        infos[0].name, ["GOOG"], ["1d"], params={"fast": 10}, data=data.directory("market"),
        commission_pct=0.001, slippage_bps=2.0, allow_short=False, stop_loss_pct=0.05))
    job: Job = tw.submit_backtest("default/GOOG_1d", timeout=1.0)
    found = list(tw.optimize(
        "sma_crossover", ["GOOG"], ["1d"], space={"fast": (5, 30, 5), "ma": ["sma", "ema"]},
        sampler="tpe", trials=20, seed=7, constraints=["fast < slow"],
        walk_forward=WalkForward(train_bars=500, test_bars=250), objective="Calmar Ratio"))
    tw.submit_optimization("sma_crossover", space=[ParamRange(name="fast", type="int", low=5,
                           high=9)], trials=None, parallelism=2, timeout_s=60.0)
    refs: list[ConfigurationRef] = tw.configurations(strategy="sma_crossover")
    ref, text = tw.configuration(refs[0].name)
    path: Path = tw.download_configuration(ref.name, "configs")
    result = found[-1].optimize_result
    return result.best_score if result else float(len(events) + len(text)) + job.percentage

async def async_use(tw: AsyncClient) -> int:
    n = 0
    async for event in tw.optimize("sma_crossover", space={"fast": "5:30:5"}, trials=3):
        n += event.seq
    async for event in tw.backtest("sma_crossover", ["SYNTH"], ["1h"]):
        n += event.seq
    await tw.download_configuration("sma_crossover/SYNTH_1h", "configs")
    return n + len(await tw.strategies())
"""


@pytest.mark.timeout(240)
def test_kind_calls_type_check_and_wrong_options_are_errors(tmp_path: Path) -> None:
    bad = (
        GOOD
        + """
def wrong(tw: Client) -> None:
    tw.backtest("sma_crossover", comission_pct=0.001)
    tw.optimize("sma_crossover", space={"fast": (5, 30)}, sampler="bayes")
    tw.optimize("sma_crossover", trials=3)
"""
    )
    out, status = check(tmp_path, bad)
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 3, out
    assert 'Unexpected keyword argument "comission_pct"' in errors[0]
    assert '"sampler"' in errors[1]
    assert 'Missing named argument "space"' in errors[2]
    first_wrong = len(GOOD.splitlines()) + 1
    assert all(int(line.split(":")[1]) > first_wrong for line in errors), out
