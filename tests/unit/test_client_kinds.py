"""The SDK's backtest, optimization, strategy and configuration calls: the requests they build
from typed options, the strategy lookup behind a shorthand search space, what a job reply
becomes, and the sha256-checked configuration download. Driven without a channel."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from google.protobuf.message import Message

from shared import errors
from shared.client import JobKind, data
from shared.client import operations as op
from shared.client.config_download import ConfigurationDownload
from shared.client.convert import job_from_proto
from shared.client.policy import IDEMPOTENT_METHODS
from shared.optimize import ParamRange, WalkForward
from shared.results import ConfigurationRef
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

_T = TypeVar("_T")


def drive(operation: op.Operation[_T], replies: list[Message]) -> tuple[_T, list[op.Unary]]:
    calls: list[op.Unary] = []
    try:
        calls.append(next(operation))
        for reply in replies:
            calls.append(operation.send(reply))
    except StopIteration as done:
        return done.value, calls
    raise AssertionError(f"the operation wanted more than {len(replies)} replies")


def sma_listing() -> opb.ListStrategiesResponse:
    return opb.ListStrategiesResponse(
        strategies=[
            opb.StrategyInfo(
                name="sma_crossover",
                description="fast MA crosses slow MA",
                params=[
                    opb.StrategyParam(name="fast", type=spb.PARAM_TYPE_INT, default="10",
                                      low=2, high=200, step=1),
                    opb.StrategyParam(name="slow", type=spb.PARAM_TYPE_INT, default="20",
                                      low=5, high=400),
                    opb.StrategyParam(name="band", type=spb.PARAM_TYPE_FLOAT, default="0.0",
                                      low=0, high=0.05),
                    opb.StrategyParam(name="ma", type=spb.PARAM_TYPE_CATEGORICAL,
                                      default="sma", choices=["sma", "ema"]),
                ],
                constraints=["fast < slow"],
            )
        ]
    )  # fmt: skip


def queued(job_id: str) -> ppb.Job:
    return ppb.Job(job_id=job_id, state=ppb.JOB_STATE_QUEUED, kind=ppb.JOB_KIND_BACKTEST)


def test_a_backtest_sends_the_strategy_its_params_as_text_and_only_the_settings_given() -> None:
    job, [call] = drive(
        op.submit_backtest(
            "sma_crossover",
            ["GOOG"],
            ["1d"],
            2.0,
            {
                "params": {"fast": 12, "ma": "ema", "band": 0.01},
                "data": data.directory("market", start="2010-01-01"),
                "commission_pct": 0.002,
                "allow_short": False,
                "stop_loss_pct": 0.05,
            },
        ),
        [queued("b1")],
    )
    assert job.job_id == "b1" and job.kind is JobKind.BACKTEST
    request = call.request
    assert isinstance(request, spb.BacktestRequest)
    assert call.method == "SubmitBacktest" and call.timeout == 2.0
    assert request.strategy == "sma_crossover" and not request.model
    assert dict(request.params) == {"fast": "12", "ma": "ema", "band": "0.01"}
    assert request.data.path == "market" and request.data.start == "2010-01-01"
    s = request.settings
    assert s.commission_pct == 0.002 and s.HasField("allow_short") and not s.allow_short
    assert s.stop_loss_pct == 0.05
    assert not s.HasField("initial_cash") and not s.HasField("take_profit_pct")


def test_a_name_with_a_slash_is_a_stored_model_and_takes_no_params() -> None:
    _, [call] = drive(op.submit_backtest("default/SYNTH_1h_v2", [], [], None, {}), [queued("b2")])
    assert isinstance(call.request, spb.BacktestRequest)
    assert call.request.model == "default/SYNTH_1h_v2" and not call.request.strategy
    with pytest.raises(ValueError, match="stored model"):
        next(op.submit_backtest("default/SYNTH_1h", [], [], None, {"params": {"fast": 1}}))


def test_a_shorthand_space_is_typed_by_the_strategys_parameters() -> None:
    job, calls = drive(
        op.submit_optimization(
            "sma_crossover",
            ["GOOG"],
            ["1d"],
            {"fast": (5, 30, 5), "slow": "20:100", "band": (0.0, 0.02), "ma": ["sma", "ema"]},
            None,
            {
                "sampler": "grid",
                "trials": None,
                "seed": 7,
                "constraints": ["fast < slow"],
                "objective": "Calmar Ratio",
                "walk_forward": WalkForward(train_bars=500, test_bars=250, anchored=True),
                "data": data.directory("market"),
            },
        ),
        [sma_listing(), queued("o1")],
    )
    assert [c.method for c in calls] == ["ListStrategies", "SubmitOptimization"]
    request = calls[1].request
    assert isinstance(request, spb.OptimizeRequest)
    fast, slow, band, ma = request.space
    assert (fast.type, fast.low, fast.high, fast.step) == (spb.PARAM_TYPE_INT, 5, 30, 5)
    assert (slow.type, slow.low, slow.high, slow.step) == (spb.PARAM_TYPE_INT, 20, 100, 1)
    assert band.type == spb.PARAM_TYPE_FLOAT and not band.HasField("step")
    assert ma.type == spb.PARAM_TYPE_CATEGORICAL and list(ma.choices) == ["sma", "ema"]
    assert request.sampler == spb.SAMPLER_GRID and request.seed == 7
    assert not request.HasField("trials")  # None with grid: the whole grid
    assert request.objective.stat == "Calmar Ratio" and not request.objective.minimize
    assert list(request.constraints) == ["fast < slow"]
    w = request.walk_forward
    assert (w.train_bars, w.test_bars, w.anchored) == (500, 250, True)
    assert job.job_id == "o1"


def test_param_ranges_need_no_strategy_lookup() -> None:
    space = [ParamRange(name="fast", type="int", low=5, high=20, step=5)]
    request, calls = drive(
        op.optimize_request("sma_crossover", ["GOOG"], ["1d"], space, None, {"trials": 9}),
        [],
    )
    assert calls == [] or [c.method for c in calls] == []
    assert request.space[0].name == "fast" and request.trials == 9


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"nope": (1, 2)}, "has no parameter 'nope'; its parameters: fast, slow, band, ma"),
        ({"fast": (30, 5)}, "low 30 is above high 5; swap them"),
        ({"fast": (5.5, 10)}, "int parameter: give whole numbers"),
        ({"fast": (5, 10, 0)}, "step must be > 0"),
        ({"fast": "5-10"}, None),
        ({"fast": "5:x"}, "must be numbers"),
        ({"ma": (1, 2)}, "give choices from sma,ema"),
        ({}, "at least one"),
    ],
)
def test_bad_shorthand_says_what_to_write(space: dict[str, object], message: str | None) -> None:
    operation = op.optimize_request("sma_crossover", [], [], space, None, {})  # type: ignore[arg-type]
    assert next(operation).method == "ListStrategies"
    if message is None:  # "5-10" is one categorical choice: the server checks it as an int
        request = None
        try:
            operation.send(sma_listing())
        except StopIteration as done:
            request = done.value
        assert request is not None and list(request.space[0].choices) == ["5-10"]
        return
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        operation.send(sma_listing())


def test_an_unknown_strategy_lists_the_known_ones_on_the_strategy_field() -> None:
    operation = op.optimize_request("smaa", [], [], {"fast": (1, 2)}, None, {})
    next(operation)
    with pytest.raises(errors.InvalidArgumentError, match="known: sma_crossover") as caught:
        operation.send(sma_listing())
    assert caught.value.field == "strategy"


def test_strategies_become_dataclasses_with_typed_params() -> None:
    [info], [call] = drive(op.strategies(1.0), [sma_listing()])
    assert call.method == "ListStrategies" and call.timeout == 1.0
    assert info.name == "sma_crossover" and info.constraints == ("fast < slow",)
    fast = info.param("fast")
    assert fast is not None and (fast.type, fast.default, fast.low, fast.high) == (
        "int", "10", 2, 200
    )  # fmt: skip
    slow = info.param("slow")
    assert slow is not None and slow.step is None
    ma = info.param("ma")
    assert ma is not None and ma.choices == ("sma", "ema")


def test_configurations_page_and_get_returns_the_json() -> None:
    ref = ppb.ConfigurationRef(name="sma_crossover/GOOG_1d_v1", strategy="sma_crossover",
                               version=1, params={"fast": "10"})  # fmt: skip
    pages: list[Message] = [
        opb.ListConfigurationsResponse(configurations=[ref], next_page_token="t"),
        opb.ListConfigurationsResponse(configurations=[ref]),
    ]
    refs, calls = drive(op.configurations("sma_crossover", None), pages)
    assert [r.name for r in refs] == ["sma_crossover/GOOG_1d_v1"] * 2
    assert [c.request.page_token for c in calls] == ["", "t"]  # type: ignore[attr-defined]
    (got, text), _ = drive(
        op.configuration("sma_crossover/GOOG_1d", None),
        [opb.Configuration(ref=ref, configuration_json='{"params": {"fast": "10"}}')],
    )
    assert got.params == {"fast": "10"} and text == '{"params": {"fast": "10"}}'
    assert {"ListStrategies", "ListConfigurations", "GetConfiguration"} <= set(IDEMPOTENT_METHODS)


def test_a_job_reply_carries_kind_snapshot_and_optimizer() -> None:
    msg = ppb.Job(
        job_id="o2", state=ppb.JOB_STATE_RUNNING, kind=ppb.JOB_KIND_OPTIMIZE,
        step_index=2, step_total=4, step_name="Optimizing", step_percentage=40.0,
        eta_seconds=12.5,
        optimizer=ppb.OptimizerProgress(iteration=3, total_iterations=10, best_score=1.5,
                                        best_params={"fast": "10"}),
        optimize_result=ppb.OptimizeResult(strategy="sma_crossover", best_params={"fast": "10"}),
    )  # fmt: skip
    job = job_from_proto(msg)
    assert job.kind is JobKind.OPTIMIZE and (job.step_index, job.step_total) == (2, 4)
    assert job.eta_seconds == 12.5 and job.optimizer is not None
    assert job.optimizer.best_params == {"fast": "10"} and job.optimizer.iteration == 3
    assert job.optimize_result is not None and job.optimize_result.strategy == "sma_crossover"
    assert job_from_proto(queued("t")).eta_seconds is None


def _ref(body: bytes, **overrides: object) -> ConfigurationRef:
    fields: dict[str, object] = {
        "name": "sma_crossover/GOOG_1d_v3",
        "strategy": "sma_crossover",
        "version": 3,
        "sha256": hashlib.sha256(body).hexdigest(),
        "size_bytes": len(body),
        **overrides,
    }
    return ConfigurationRef(**fields)  # type: ignore[arg-type]


def test_a_configuration_download_is_checked_then_renamed_into_place(tmp_path: Path) -> None:
    body = b'{"strategy": "sma_crossover", "params": {"fast": "10"}}\n'
    download = ConfigurationDownload(tmp_path)
    download.begin(_ref(body))
    download.write(body[:10])
    download.write(body[10:])
    path = download.commit()
    assert path == tmp_path / "sma_crossover" / "GOOG_1d_v3" / "configuration.json"
    assert path.read_bytes() == body
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["configuration.json"]


def test_a_corrupt_configuration_download_leaves_the_old_file(tmp_path: Path) -> None:
    body = b'{"params": {"fast": "10"}}'
    good = ConfigurationDownload(tmp_path)
    good.begin(_ref(body))
    good.write(body)
    path = good.commit()
    bad = ConfigurationDownload(tmp_path)
    bad.begin(_ref(body))
    bad.write(body.replace(b"10", b"99"))
    with pytest.raises(errors.DataLossError, match="corrupt"):
        bad.commit()
    assert path.read_bytes() == body and len(list(path.parent.iterdir())) == 1
    orphan = ConfigurationDownload(tmp_path)
    with pytest.raises(errors.DataLossError, match="before the configuration header"):
        orphan.write(b"x")
