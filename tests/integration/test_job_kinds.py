"""Backtest and optimization jobs through the orchestrator and a trainer: submitted, streamed,
watched, cancelled, listed, refused with the field to change; and a training job's result
carries its backtest."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math

import grpc
import pytest
from google.protobuf.message import Message

from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.conftest import Cluster


def _set(msg: Message, fields: dict[str, object]) -> None:
    for name, value in fields.items():
        target = getattr(msg, name)
        if isinstance(value, list):
            del target[:]
            target.extend(value)
        elif isinstance(value, dict):
            target.clear()
            target.update(value)
        elif isinstance(value, Message):
            target.CopyFrom(value)
        else:
            setattr(msg, name, value)


def _backtest(**fields: object) -> spb.BacktestRequest:
    msg = spb.BacktestRequest(
        symbols=["SYNTH"],
        timeframes=["1h"],
        strategy="sma_crossover",
        params={"fast": "10", "slow": "30"},
        data=spb.DataSpec(bars=5000),
        settings=spb.BacktestSettings(commission_pct=0.001),
    )
    _set(msg, fields)
    return msg


def _optimize(**fields: object) -> spb.OptimizeRequest:
    msg = spb.OptimizeRequest(
        symbols=["SYNTH"],
        timeframes=["1h"],
        strategy="sma_crossover",
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=5, high=15, step=5),
            spb.ParamRange(name="slow", type=spb.PARAM_TYPE_INT, low=20, high=40, step=10),
        ],
        constraints=["fast < slow"],
        sampler=spb.SAMPLER_GRID,
        seed=1,
        data=spb.DataSpec(bars=5000),
    )
    _set(msg, fields)
    return msg


async def test_a_backtest_streams_candles_and_ends_with_its_stats(cluster: Cluster) -> None:
    events = [e async for e in cluster.stub.Backtest(_backtest())]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last.message
    assert last.HasField("backtest_result")
    result = last.backtest_result
    assert result.strategy == "sma_crossover" and result.symbol == "SYNTH"
    assert "Buy & Hold Return [%]" in result.stats and result.trades_total > 0
    assert result.data.source == "synthetic"
    assert any(e.items.name == "candles" and e.stage for e in events)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    job = await cluster.stub.GetJob(opb.GetJobRequest(job_id=last.job_id))
    assert job.kind == ppb.JOB_KIND_BACKTEST
    assert job.backtest.strategy == "sma_crossover"


async def test_an_optimization_streams_trials_and_keeps_them(cluster: Cluster) -> None:
    events = [e async for e in cluster.stub.Optimize(_optimize())]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last.message
    trials = [e for e in events if e.kind == ppb.EVENT_KIND_TRIAL]
    assert len(trials) == 9
    assert trials[-1].optimizer.iteration == 9 == trials[-1].optimizer.total_iterations
    result = last.optimize_result
    assert len(result.trials) == 9 and result.best_params
    assert result.best_params == trials[-1].optimizer.best_params
    stored = result.configuration
    assert stored.name.startswith("sma_crossover/SYNTH_1h_v") and stored.version == 1
    assert dict(stored.params) == dict(result.best_params)
    got = await cluster.stub.GetConfiguration(opb.GetConfigurationRequest(name=stored.name))
    assert hashlib.sha256(got.configuration_json.encode()).hexdigest() == stored.sha256
    assert json.loads(got.configuration_json)["params"] == dict(result.best_params)
    chunks = [
        c
        async for c in cluster.stub.DownloadConfiguration(
            opb.GetConfigurationRequest(name="sma_crossover/SYNTH_1h")
        )
    ]
    body = b"".join(c.data for c in chunks if c.WhichOneof("kind") == "data")
    assert hashlib.sha256(body).hexdigest() == stored.sha256
    listed = await cluster.stub.ListConfigurations(opb.ListConfigurationsRequest())
    assert [c.name for c in listed.configurations] == [stored.name]


async def test_submit_then_watch_a_backtest_with_the_same_request_id(cluster: Cluster) -> None:
    first = await cluster.stub.SubmitBacktest(_backtest(request_id="bt-1"))
    again = await cluster.stub.SubmitBacktest(_backtest(request_id="bt-1"))
    assert first.job_id == again.job_id and first.kind == ppb.JOB_KIND_BACKTEST
    events = [e async for e in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=first.job_id))]
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED


async def test_a_cancelled_optimization_keeps_its_finished_trials(cluster: Cluster) -> None:
    big = _optimize(
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=2, high=40, step=1),
            spb.ParamRange(name="slow", type=spb.PARAM_TYPE_INT, low=41, high=200, step=1),
        ],
        data=spb.DataSpec(bars=50_000),
    )
    job = await cluster.stub.SubmitOptimization(big)
    async for event in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
        if event.kind == ppb.EVENT_KIND_TRIAL and event.optimizer.iteration >= 2:
            await cluster.stub.CancelJob(opb.CancelJobRequest(job_id=job.job_id, reason="test"))
        if event.state == ppb.JOB_STATE_CANCELLED:
            assert len(event.optimize_result.trials) >= 2
            assert event.optimize_result.best_params
            break
    else:
        pytest.fail("the optimization was not cancelled")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: _backtest(strategy="no_such_strategy"), "strategy"),
        (lambda: _backtest(params={"fast": "50", "slow": "30"}), "params.fast"),
        (lambda: _backtest(params={"sped": "5"}), "params.sped"),
        (lambda: _backtest(data=spb.DataSpec(bars=5000, start="2031-01-01")), "data.start"),
        (lambda: _optimize(space=[]), "space"),
        (lambda: _optimize(trials=0), "trials"),
        (lambda: _optimize(strategy="nope"), "strategy"),
        (lambda: _optimize(constraints=["fast > 1000"]), "constraints"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    cluster: Cluster, make: object, field: str
) -> None:
    request = make()  # type: ignore[operator]
    call = (
        cluster.stub.SubmitBacktest
        if isinstance(request, spb.BacktestRequest)
        else cluster.stub.SubmitOptimization
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(field), info.value.details()


async def test_list_strategies_describes_each_parameter(cluster: Cluster) -> None:
    reply = await cluster.stub.ListStrategies(opb.ListStrategiesRequest())
    names = {s.name for s in reply.strategies}
    assert {"sma_crossover", "rsi_reversion", "bollinger_breakout", "liquidity_sweep"} <= names
    sweep = next(s for s in reply.strategies if s.name == "liquidity_sweep")
    params = {p.name: p for p in sweep.params}
    assert {"pierce_depth", "volume_spike_threshold", "reversal_candles"} <= set(params)
    assert all(p.description and p.default for p in sweep.params)


async def test_a_stored_model_backtests_on_its_own_market(cluster: Cluster) -> None:
    train = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    train.strategy.training.epochs = 2
    events = [e async for e in cluster.stub.Train(train)]
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1].message
    result = events[-1].result
    trading = result.backtest
    assert math.isfinite(trading.stats["Buy & Hold Return [%]"])
    assert math.isfinite(trading.stats["Return [%]"])
    assert trading.symbol == "SYNTH" and 0 < trading.candles < 3000  # the test split only
    assert trading.trades_total == len(trading.trades)
    assert trading.model == "default_fuzzy_mlp"
    listed = await cluster.stub.ListModels(opb.ListModelsRequest())
    stored = next(m for m in listed.models if m.name == result.model.name)
    assert stored.trading["Return [%]"] == pytest.approx(trading.stats["Return [%]"])
    assert stored.trading["Buy & Hold Return [%]"] == pytest.approx(
        trading.stats["Buy & Hold Return [%]"]
    )
    name = result.model.name
    request = spb.BacktestRequest(model=name, data=spb.DataSpec(bars=2000))
    done = [e async for e in cluster.stub.Backtest(request)][-1]
    assert done.state == ppb.JOB_STATE_SUCCEEDED, done.message
    assert done.backtest_result.model == name
    assert done.backtest_result.candles == 2000
    await asyncio.sleep(0)


async def test_get_job_is_the_progress_snapshot_a_poller_needs(cluster: Cluster) -> None:
    big = _optimize(
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=2, high=40, step=1),
            spb.ParamRange(name="slow", type=spb.PARAM_TYPE_INT, low=41, high=200, step=1),
        ],
        data=spb.DataSpec(bars=20_000),
    )
    job = await cluster.stub.SubmitOptimization(big)
    snapshot = job
    for _ in range(600):
        snapshot = await cluster.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
        if snapshot.optimizer.iteration >= 2:
            break
        await asyncio.sleep(0.05)
    assert snapshot.state == ppb.JOB_STATE_RUNNING
    assert (snapshot.step_index, snapshot.step_total) == (2, 3)
    assert snapshot.step_name == "Optimizing" and snapshot.percentage > 25.0
    assert snapshot.optimizer.total_iterations == 39 * 160
    assert snapshot.optimizer.best_params and snapshot.optimizer.objective == "Sharpe Ratio"
    assert snapshot.updated_at.seconds > 0 and snapshot.HasField("eta_seconds")
    await cluster.stub.CancelJob(opb.CancelJobRequest(job_id=job.job_id))
    async for event in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
        last = event
    done = await cluster.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
    assert done.state == ppb.JOB_STATE_CANCELLED == last.state
    assert done.optimizer.iteration >= 2 and not done.HasField("eta_seconds")
    assert len(done.optimize_result.trials) >= 2


async def test_a_model_backtest_names_the_model_field_when_refused(cluster: Cluster) -> None:
    cases = [
        (spb.BacktestRequest(model="no_such/MODEL_1h"), grpc.StatusCode.NOT_FOUND),
        (spb.BacktestRequest(model="../../etc"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            spb.BacktestRequest(model="a/b_1h", strategy="sma_crossover"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for request, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await cluster.stub.SubmitBacktest(request)
        assert info.value.code() == code, info.value.details()
        assert (info.value.details() or "").startswith("model"), info.value.details()


async def test_fixed_parameters_are_checked_at_submit(cluster: Cluster) -> None:
    for value in ("abc", "99999"):
        request = _optimize(fixed_params={"ma": value})
        del request.space[1:]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await cluster.stub.SubmitOptimization(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (info.value.details() or "").startswith("fixed_params.ma"), info.value.details()


async def test_cancel_job_stops_a_running_backtest(cluster: Cluster) -> None:
    request = spb.BacktestRequest(
        symbols=["SYNTH"],
        timeframes=["1m"],
        strategy="liquidity_sweep",
        data=spb.DataSpec(bars=2_000_000),
    )
    job = await cluster.stub.SubmitBacktest(request)
    cancelled_at = 0.0
    async for event in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
        if not cancelled_at and event.step_name == "Backtesting":
            cancelled_at = asyncio.get_running_loop().time()
            await cluster.stub.CancelJob(opb.CancelJobRequest(job_id=job.job_id, reason="enough"))
        last = event
    assert cancelled_at, "the backtest step was reached"
    assert last.state == ppb.JOB_STATE_CANCELLED, last.message
    assert not last.HasField("backtest_result")
    assert asyncio.get_running_loop().time() - cancelled_at < 5.0
