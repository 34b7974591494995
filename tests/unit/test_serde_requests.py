"""The job-kind seam on the wire and in the store: every kind's request survives
proto → domain → proto, stored bytes and the trainer job, with defaults filled."""

from __future__ import annotations

import pytest

from shared.job_requests import BacktestRequest, OptimizationRequest
from shared.jobs import JobKind
from shared.rpc import serde_requests as sr
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSource, SpecError, TrainingRequest, default_strategy


def _backtest_msg() -> spb.BacktestRequest:
    return spb.BacktestRequest(
        symbols=["GOOG"],
        timeframes=["1d"],
        strategy="rsi_reversion",
        params={"period": "14"},
        settings=spb.BacktestSettings(commission_pct=0.001, stop_loss_pct=0.05),
        data=spb.DataSpec(path="real"),
    )


def _optimize_msg() -> spb.OptimizeRequest:
    return spb.OptimizeRequest(
        symbols=["EURUSD"],
        timeframes=["1h"],
        strategy="sma_crossover",
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=5, high=20, step=5),
            spb.ParamRange(name="ma", type=spb.PARAM_TYPE_CATEGORICAL, choices=["sma", "ema"]),
        ],
        constraints=["fast < slow"],
        sampler=spb.SAMPLER_GRID,
        seed=4,
        walk_forward=spb.WalkForwardSpec(train_bars=500, test_bars=100, gap_bars=5),
        data=spb.DataSpec(dataset="fx"),
    )


def test_a_backtest_request_gets_its_defaults_and_round_trips() -> None:
    request = sr.backtest_request_from_proto(_backtest_msg())
    assert request.data.source is DataSource.DIRECTORY
    assert request.settings.initial_cash == 10_000.0
    assert request.settings.allow_short is True
    assert request.settings.costs.commission_pct == 0.001
    assert request.settings.stop_loss_pct == 0.05
    assert sr.backtest_request_from_proto(sr.backtest_request_to_proto(request)) == request


def test_an_optimization_request_gets_its_defaults_and_round_trips() -> None:
    request = sr.optimization_request_from_proto(_optimize_msg())
    assert request.optimizer.sampler == "grid"
    assert request.optimizer.trials is None  # the whole grid
    assert request.optimizer.parallelism == 1
    assert request.objective.stat == "Sharpe Ratio"
    assert request.objective.direction == "maximize"
    assert request.optimizer.walk_forward is not None
    assert request.optimizer.walk_forward.gap_bars == 5
    assert request.data.source is DataSource.DATASET
    assert sr.optimization_request_from_proto(sr.optimization_request_to_proto(request)) == request


def test_a_time_budget_alone_leaves_the_trial_budget_open() -> None:
    msg = _optimize_msg()
    msg.sampler = spb.SAMPLER_TPE
    assert sr.optimization_request_from_proto(msg).optimizer.trials == sr.DEFAULT_TRIALS
    msg.timeout_seconds = 30
    assert sr.optimization_request_from_proto(msg).optimizer.trials is None


@pytest.mark.parametrize(
    ("request_", "kind"),
    [
        (lambda: sr.backtest_request_from_proto(_backtest_msg()), JobKind.BACKTEST),
        (lambda: sr.optimization_request_from_proto(_optimize_msg()), JobKind.OPTIMIZE),
        (
            lambda: TrainingRequest(
                symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy()
            ),
            JobKind.TRAIN,
        ),
    ],
)
def test_every_kind_survives_the_store_and_the_trainer_job(request_: object, kind: JobKind) -> None:
    request = request_()  # type: ignore[operator]
    stored_kind, payload = sr.request_to_stored(request)
    assert stored_kind == kind.value
    assert sr.request_from_stored(stored_kind, payload) == request
    job = sr.trainer_job_to_proto("j1", request, "orch:1", "token")
    assert sr.job_request_from_trainer_job(job) == request
    assert sr.kind_of(request) is kind


def test_rows_stored_before_job_kinds_read_as_training() -> None:
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    _, payload = sr.request_to_stored(request)
    assert sr.request_from_stored("", payload) == request


def test_a_trainer_job_with_two_requests_is_refused() -> None:
    job = sr.trainer_job_to_proto("j1", sr.backtest_request_from_proto(_backtest_msg()))
    job.optimize.CopyFrom(_optimize_msg())
    with pytest.raises(SpecError):
        sr.job_request_from_trainer_job(job)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: setattr(m.walk_forward, "test_bars", 0), "walk_forward.test_bars"),
        (lambda m: setattr(m, "parallelism", -1), "parallelism"),
        (lambda m: m.space.add(name="x"), "space[2].type"),
    ],
)
def test_malformed_optimization_fields_are_named(mutate: object, field: str) -> None:
    msg = _optimize_msg()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        sr.optimization_request_from_proto(msg)
    assert info.value.field == field


def test_backtest_settings_out_of_range_name_the_setting() -> None:
    msg = _backtest_msg()
    msg.settings.commission_pct = 0.5
    with pytest.raises(Exception) as info:
        sr.backtest_request_from_proto(msg)
    assert "commission_pct" in getattr(info.value, "field", "")
    assert isinstance(sr.backtest_request_from_proto(_backtest_msg()), BacktestRequest)
    assert OptimizationRequest.kind is JobKind.OPTIMIZE
