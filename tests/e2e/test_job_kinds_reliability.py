"""A trainer killed (SIGKILL) in the middle of a backtest or an optimization: the job is retried
on another node or fails naming the lost node; it never stays RUNNING."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.e2e.test_reliability import (
    Follower,
    assert_contiguous,
    cluster,
    get_job,
    kill9,
    tails,
)

pytestmark = pytest.mark.e2e


def _optimization(points: int) -> spb.OptimizeRequest:
    return spb.OptimizeRequest(
        symbols=["SYNTH"],
        timeframes=["1h"],
        strategy="sma_crossover",
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=2, high=1 + points, step=1),
            spb.ParamRange(name="slow", type=spb.PARAM_TYPE_INT, low=300, high=300, step=1),
        ],
        sampler=spb.SAMPLER_GRID,
        data=spb.DataSpec(bars=20_000),
    )


def _submit_optimization(address: str, request: spb.OptimizeRequest) -> str:
    with plumbing.create_sync_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        return stub.SubmitOptimization(request, timeout=30).job_id


def _submit_backtest(address: str, request: spb.BacktestRequest) -> str:
    with plumbing.create_sync_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        return stub.SubmitBacktest(request, timeout=30).job_id


def _a_trial(events: list[ppb.ProgressEvent]) -> bool:
    return any(e.kind == ppb.EVENT_KIND_TRIAL and e.optimizer.iteration >= 2 for e in events)


def _backtesting(events: list[ppb.ProgressEvent]) -> bool:
    return any(e.step_name == "Backtesting" for e in events)


@pytest.mark.timeout(180)
def test_kill9_mid_optimization_retries_on_the_other_node(tmp_path: Path) -> None:
    with cluster(tmp_path, 2) as (orch, nodes, _):
        job_id = _submit_optimization(orch.address, _optimization(points=200))
        with Follower(orch.address, job_id) as follower:
            follower.wait_for(_a_trial, 90, "the second trial")
            victim = next(n for n in nodes if n.address == get_job(orch.address, job_id).node)
            kill9(victim.proc)
            final = follower.wait_terminal(150)
            events = follower.events
        logs = (orch.log, *(n.log for n in nodes))
        assert final.state == ppb.JOB_STATE_SUCCEEDED, f"{final}\n{tails(*logs)}"
        assert_contiguous(events)
        assert any(
            e.state == ppb.JOB_STATE_QUEUED and victim.address in e.message for e in events
        ), "the retry names the lost node"
        assert len(final.optimize_result.trials) == 200  # a whole second run
        assert final.optimize_result.configuration.name
        job = get_job(orch.address, job_id)
        assert job.attempt == 2 and job.node != victim.address


@pytest.mark.timeout(120)
def test_kill9_mid_backtest_of_the_only_node_fails_the_job_naming_it(tmp_path: Path) -> None:
    with cluster(tmp_path, 1, orchestrator_extra=("--max-attempts", "1")) as (orch, nodes, _):
        (node,) = nodes
        request = spb.BacktestRequest(
            symbols=["SYNTH"],
            timeframes=["1m"],
            strategy="liquidity_sweep",
            data=spb.DataSpec(bars=3_000_000),
        )
        job_id = _submit_backtest(orch.address, request)
        with Follower(orch.address, job_id) as follower:
            follower.wait_for(_backtesting, 90, "the backtest step")
            kill9(node.proc)
            final = follower.wait_terminal(60)
            events = follower.events
        assert final.state == ppb.JOB_STATE_FAILED, f"{final}\n{tails(orch.log, node.log)}"
        assert_contiguous(events)
        assert final.error.code == "NODE_LOST" and node.address in final.error.message
        assert get_job(orch.address, job_id).state == ppb.JOB_STATE_FAILED
