"""Bad input gets a precise status and a message that says what to change; nothing is stored."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import pytest_asyncio
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, progress_pb2
from shared.rpc.v1 import strategy_pb2 as spb
from tests.conftest import Cluster, start_cluster

pytestmark = pytest.mark.timeout(60)


def field_violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    fields = []
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


@pytest.mark.parametrize(
    ("request_json", "code", "field"),
    [
        ({"timeframes": ["1h"]}, grpc.StatusCode.INVALID_ARGUMENT, "symbols"),
        ({"symbols": ["SYNTH"]}, grpc.StatusCode.INVALID_ARGUMENT, "timeframes"),
        (
            {"symbols": ["../etc"], "timeframes": ["1h"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "symbols[0]",
        ),
        (
            {"symbols": ["SYNTH"], "timeframes": ["7x"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "timeframes[0]",
        ),
        (
            {"symbols": ["SYNTH"], "timeframes": ["1h"], "strategy": {"training": {"epochs": -3}}},
            grpc.StatusCode.INVALID_ARGUMENT,
            "strategy.training.epochs",
        ),
        (
            {
                "symbols": ["SYNTH"],
                "timeframes": ["1h"],
                "strategy": {
                    "indicators": [{"id": "x", "type": "nope"}],
                    "fuzzy_sets": [
                        {"input": "x", "name": "a", "shape": "gaussian", "params": [0, 1]}
                    ],
                },
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "strategy.indicators[0].type",
        ),
        (
            {
                "symbols": ["SYNTH"],
                "timeframes": ["1h"],
                "strategy": {
                    "indicators": [{"id": "rsi_14", "type": "rsi", "params": {"period": 14}}],
                    "fuzzy_sets": [
                        {"input": "missing", "name": "a", "shape": "gaussian", "params": [0, 1]}
                    ],
                },
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "strategy.fuzzy_sets[0].input",
        ),
    ],
)
async def test_submit_rejects_bad_requests_with_the_field_to_fix(
    cluster: Cluster, request_json: dict[str, object], code: grpc.StatusCode, field: str
) -> None:

    request = json_format.ParseDict(request_json, spb.TrainRequest())
    calls: tuple[Awaitable[object], ...] = (
        cluster.stub.SubmitJob(request),
        _first(cluster.stub.Train(request)),
    )
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == code
        assert field in (err.value.details() or "")
        assert field_violations(err.value) == [field]
    jobs = await cluster.stub.ListJobs(opb.ListJobsRequest())
    assert len(jobs.jobs) == 0
    assert not cluster.models_dir.exists() or not any(cluster.models_dir.iterdir())


async def _first(stream: AsyncIterable[object]) -> object:
    async for item in stream:
        return item
    return None


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("name: x\nindicators: [\n", "line"),
        ("name: x\nfuzzy_sets: {}\n", "indicators"),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, low: [0, 20, 40]}}\nmodle: {}\n",
            "modle",
        ),
        (
            "name: x\nindicators: {r: {type: rsi, period: fourteen}}\n"
            "fuzzy_sets: {z: {indicator: r, low: [0, 20, 40]}}\n",
            "indicators.r.period",
        ),
        (
            "name: x\nindicators: {r: {type: rsi}}\n"
            "fuzzy_sets: {z: {indicator: r, low: [0, 20, 40]}}\n"
            "nn_inputs: [{fuzzy_set: zz}]\n",
            "zz",
        ),
    ],
)
async def test_bad_strategy_yaml_names_what_to_fix(
    cluster: Cluster, yaml_text: str, needle: str
) -> None:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=yaml_text)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (err.value.details() or "")
    jobs = await cluster.stub.ListJobs(opb.ListJobsRequest())
    assert len(jobs.jobs) == 0


async def test_strategy_and_strategy_yaml_together_are_rejected(cluster: Cluster) -> None:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml="name: x\n")
    request.strategy.training.epochs = 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == ["strategy_yaml"]


async def test_unknown_job_is_not_found(cluster: Cluster) -> None:
    calls: tuple[Awaitable[object], ...] = (
        cluster.stub.GetJob(opb.GetJobRequest(job_id="nope")),
        cluster.stub.CancelJob(opb.CancelJobRequest(job_id="nope")),
        _first(cluster.stub.WatchJob(opb.WatchJobRequest(job_id="nope"))),
    )
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in (err.value.details() or "")


async def test_require_gpu_without_gpu_node_is_refused_with_the_reason(cluster: Cluster) -> None:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.placement.require_gpu = True
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "requires a GPU" in (err.value.details() or "")
    assert field_violations(err.value) == ["placement.require_gpu"]


async def test_unknown_node_is_not_found(cluster: Cluster) -> None:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.placement.node = "gpu-box:50052"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert cluster.trainer.address in (err.value.details() or "")


# =============================================================================================
# The wide bad-input set: one cluster for all of it, so the last tests can show that it still
# serves after every case below was thrown at it, and that none of them stored anything.

TRAINER = "{trainer}"
"""Stands for the trainer's address (known only once the cluster runs) in ``placement.node``."""

_RSI = {"id": "rsi_14", "type": "rsi", "params": {"period": 14}}
_LOW = {"input": "rsi_14", "name": "low", "shape": "triangular", "params": [0, 20, 40]}


def train(strategy: dict[str, Any] | None = None, **fields: Any) -> spb.TrainRequest:
    """A TrainRequest from JSON (``"NaN"``/``"Infinity"`` spell non-finite doubles)."""
    document: dict[str, Any] = {"symbols": ["SYNTH"], "timeframes": ["1h"], **fields}
    if strategy is not None:
        document["strategy"] = strategy
    return json_format.ParseDict(document, spb.TrainRequest())


def rsi_strategy(**fields: Any) -> dict[str, Any]:
    """One RSI indicator and one fuzzy set, with ``fields`` replacing any part."""
    return {"indicators": [_RSI], "fuzzy_sets": [_LOW], **fields}


def one_set(shape: str, params: list[Any], input_: str = "rsi_14") -> dict[str, Any]:
    return rsi_strategy(
        fuzzy_sets=[{"input": input_, "name": "x", "shape": shape, "params": params}]
    )


M = TypeVar("M", bound=Message)


def msg(cls: type[M], document: dict[str, Any]) -> M:
    return json_format.ParseDict(document, cls())


INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@dataclass(frozen=True)
class Bad:
    """One bad input: the RPC, the request, and exactly what the caller must get back.

    ``rpc`` "Submit" means both SubmitJob and Train. ``field`` is the single BadRequest field
    violation the status must carry (empty: none expected), ``needle`` a piece of the message
    that says what is wrong.
    """

    rpc: str
    request: Message
    code: grpc.StatusCode
    field: str = ""
    needle: str = ""


def bad(
    id_: str, rpc: str, request: Message, code: grpc.StatusCode, field: str = "", needle: str = ""
) -> Any:
    return pytest.param(Bad(rpc, request, code, field, needle), id=id_)


def regression(param: Any, defect: str) -> Any:
    """A case that once showed ``defect`` (found by this suite, now fixed): a regression test."""
    return param


DEEP_YAML = "[" * 20_000 + "]" * 20_000
ALIAS_BOMB = (
    "name: x\nindicators: {r: {type: rsi}}\nfuzzy_sets: {z: {indicator: r, low: [0, 20, 40]}}\n"
    "training_data:\n  history_required:\n    a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 6))
    + "  symbols: {list: *a5}\n"
)
HUGE = "A" * 1_000_000  # 1 MB: well under the 16 MiB message cap, far over any sane value

BAD_INPUT = [
    # -- symbols and timeframes -----------------------------------------------------------------
    bad(
        "symbols-10000",
        "Submit",
        train(symbols=[f"S{i}" for i in range(10_000)]),
        INVALID,
        "symbols",
        "at most 64",
    ),
    bad(
        "symbols-duplicate",
        "Submit",
        train(symbols=["SYNTH", "SYNTH"]),
        INVALID,
        "symbols",
        "repeat",
    ),
    bad("symbols-empty-string", "Submit", train(symbols=[""]), INVALID, "symbols[0]"),
    bad("symbols-second-bad", "Submit", train(symbols=["SYNTH", "a b"]), INVALID, "symbols[1]"),
    regression(
        bad("symbols-1MB-string", "Submit", train(symbols=[HUGE]), INVALID, "symbols[0]"),
        "the message echoes the whole 1 MB symbol; the status no longer fits gRPC's "
        "metadata limit and the client gets a different code",
    ),
    bad(
        "timeframes-duplicate",
        "Submit",
        train(timeframes=["1h", "1h"]),
        INVALID,
        "timeframes",
        "repeat",
    ),
    bad(
        "timeframes-nine",
        "Submit",
        train(timeframes=[f"{i}h" for i in range(1, 10)]),
        INVALID,
        "timeframes",
        "at most 8",
    ),
    bad("timeframe-zero", "Submit", train(timeframes=["0h"]), INVALID, "timeframes[0]"),
    bad(
        "timeframe-not-a-multiple",
        "Submit",
        train(timeframes=["1h", "90m"]),
        INVALID,
        "timeframes[1]",
        "whole multiple",
    ),
    # -- strategy: indicators -------------------------------------------------------------------
    bad("strategy-name", "Submit", train({"name": "no spaces!"}), INVALID, "strategy.name"),
    bad(
        "indicators-empty",
        "Submit",
        train(rsi_strategy(indicators=[])),
        INVALID,
        "strategy.indicators",
    ),
    bad(
        "indicator-duplicate-id",
        "Submit",
        train(rsi_strategy(indicators=[_RSI, _RSI])),
        INVALID,
        "strategy.indicators[1].id",
        "twice",
    ),
    bad(
        "indicator-param-inf",
        "Submit",
        train(rsi_strategy(indicators=[{**_RSI, "params": {"period": "Infinity"}}])),
        INVALID,
        "strategy.indicators[0].params.period",
        "finite",
    ),
    bad(
        "indicator-param-nan",
        "Submit",
        train(rsi_strategy(indicators=[{**_RSI, "params": {"period": "NaN"}}])),
        INVALID,
        "strategy.indicators[0].params.period",
        "finite",
    ),
    bad(
        "indicator-param-negative",
        "Submit",
        train(rsi_strategy(indicators=[{**_RSI, "params": {"period": -5}}])),
        INVALID,
        "strategy.indicators[0].params.period",
    ),
    # -- strategy: fuzzy sets -------------------------------------------------------------------
    bad(
        "fuzzy-sets-empty",
        "Submit",
        train(rsi_strategy(fuzzy_sets=[])),
        INVALID,
        "strategy.fuzzy_sets",
    ),
    bad(
        "fuzzy-missing-output",
        "Submit",
        train(one_set("gaussian", [0, 1], "rsi_14.nope")),
        INVALID,
        "strategy.fuzzy_sets[0].input",
        "no output 'nope'",
    ),
    bad(
        "fuzzy-non-increasing",
        "Submit",
        train(one_set("triangular", [50, 20, 80])),
        INVALID,
        "strategy.fuzzy_sets[0].params",
        "non-decreasing",
    ),
    bad(
        "fuzzy-trapezoid-wrong-count",
        "Submit",
        train(one_set("trapezoidal", [0, 1, 2])),
        INVALID,
        "strategy.fuzzy_sets[0].params",
        "takes 4 parameters, got 3",
    ),
    bad(
        "fuzzy-gaussian-sigma-0",
        "Submit",
        train(one_set("gaussian", [50, 0])),
        INVALID,
        "strategy.fuzzy_sets[0].params[1]",
        "sigma",
    ),
    bad(
        "fuzzy-param-nan",
        "Submit",
        train(one_set("gaussian", ["NaN", 1])),
        INVALID,
        "strategy.fuzzy_sets[0].params[0]",
        "finite",
    ),
    bad(
        "fuzzy-unknown-shape",
        "Submit",
        train(one_set("bell", [0, 1])),
        INVALID,
        "strategy.fuzzy_sets[0].shape",
        "unknown shape",
    ),
    bad(
        "fuzzy-duplicate-name",
        "Submit",
        train(rsi_strategy(fuzzy_sets=[_LOW, _LOW])),
        INVALID,
        "strategy.fuzzy_sets[1].name",
        "defined twice",
    ),
    bad(
        "nn-input-unknown-set",
        "Submit",
        train(rsi_strategy(nn_inputs=[{"fuzzy_set": "nope"}])),
        INVALID,
        "strategy.nn_inputs[0].fuzzy_set",
    ),
    bad(
        "nn-input-foreign-timeframe",
        "Submit",
        train(rsi_strategy(nn_inputs=[{"fuzzy_set": "rsi_14", "timeframes": ["4h"]}])),
        INVALID,
        "strategy.nn_inputs[0].timeframes[0]",
    ),
    # -- strategy: labels, model, training ------------------------------------------------------
    bad(
        "label-threshold-above-1",
        "Submit",
        train({"labels": {"threshold": 1.5}}),
        INVALID,
        "strategy.labels.threshold",
        "fraction",
    ),
    bad(
        "label-threshold-negative",
        "Submit",
        train({"labels": {"threshold": -0.02}}),
        INVALID,
        "strategy.labels.threshold",
    ),
    bad(
        "label-threshold-nan",
        "Submit",
        train({"labels": {"threshold": "NaN"}}),
        INVALID,
        "strategy.labels.threshold",
        "finite",
    ),
    bad(
        "label-lookahead-negative",
        "Submit",
        train({"labels": {"lookahead": -5}}),
        INVALID,
        "strategy.labels.lookahead",
    ),
    bad(
        "label-method-unknown",
        "Submit",
        train({"labels": {"method": 99}}),
        INVALID,
        "strategy.labels.method",
    ),
    bad(
        "hidden-layer-zero",
        "Submit",
        train({"model": {"hidden_layers": [64, 0]}}),
        INVALID,
        "strategy.model.hidden_layers[1]",
    ),
    bad(
        "activation-unknown",
        "Submit",
        train({"model": {"activation": "swish"}}),
        INVALID,
        "strategy.model.activation",
        "relu",
    ),
    bad(
        "dropout-one",
        "Submit",
        train({"model": {"dropout": 1.0}}),
        INVALID,
        "strategy.model.dropout",
    ),
    bad(
        "epochs-absurd",
        "Submit",
        train({"training": {"epochs": 1_000_000}}),
        INVALID,
        "strategy.training.epochs",
        "100000",
    ),
    bad(
        "epochs-int32-min",
        "Submit",
        train({"training": {"epochs": -(2**31)}}),
        INVALID,
        "strategy.training.epochs",
    ),
    bad(
        "batch-negative",
        "Submit",
        train({"training": {"batch_size": -1}}),
        INVALID,
        "strategy.training.batch_size",
    ),
    bad(
        "batch-absurd",
        "Submit",
        train({"training": {"batch_size": 2**21}}),
        INVALID,
        "strategy.training.batch_size",
    ),
    bad(
        "learning-rate-nan",
        "Submit",
        train({"training": {"learning_rate": "NaN"}}),
        INVALID,
        "strategy.training.learning_rate",
        "finite",
    ),
    bad(
        "learning-rate-inf",
        "Submit",
        train({"training": {"learning_rate": "Infinity"}}),
        INVALID,
        "strategy.training.learning_rate",
        "finite",
    ),
    bad(
        "learning-rate-negative",
        "Submit",
        train({"training": {"learning_rate": -0.001}}),
        INVALID,
        "strategy.training.learning_rate",
    ),
    bad(
        "early-stopping-negative",
        "Submit",
        train({"training": {"early_stopping_patience": -1}}),
        INVALID,
        "strategy.training.early_stopping_patience",
    ),
    bad(
        "validation-split-half",
        "Submit",
        train({"training": {"validation_split": 0.5}}),
        INVALID,
        "strategy.training.validation_split",
    ),
    bad(
        "seed-negative",
        "Submit",
        train({"training": {"seed": -1}}),
        INVALID,
        "strategy.training.seed",
    ),
    bad(
        "yaml-too-large",
        "Submit",
        spb.TrainRequest(
            symbols=["SYNTH"], timeframes=["1h"], strategy_yaml="name: x\n" + "#" * 2_000_000
        ),
        INVALID,
        "strategy_yaml",
        "larger than",
    ),
    regression(
        bad(
            "yaml-nested-20000-deep",
            "Submit",
            spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=DEEP_YAML),
            INVALID,
            "strategy_yaml",
        ),
        "yaml.safe_load raises RecursionError, which is no SpecError: INTERNAL",
    ),
    regression(
        bad(
            "yaml-alias-bomb",
            "Submit",
            spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=ALIAS_BOMB),
            INVALID,
            "strategy_yaml",
        ),
        "the error message reprs the alias-expanded value: ~500 bytes in, a ~300 KB status "
        "that breaks gRPC's metadata limit (RESOURCE_EXHAUSTED); deeper bombs stall the loop",
    ),
    regression(
        bad(
            "indicator-type-1MB",
            "Submit",
            train(rsi_strategy(indicators=[{"id": "rsi_14", "type": HUGE}])),
            INVALID,
            "strategy.indicators[0].type",
        ),
        "the message echoes the whole 1 MB type: RESOURCE_EXHAUSTED from the metadata limit",
    ),
    # -- data ----------------------------------------------------------------------------------
    bad(
        "data-path-traversal",
        "Submit",
        train(data={"source": "DATA_SOURCE_KIND_DIRECTORY", "path": "../etc"}),
        INVALID,
        "data.path",
        "'..'",
    ),
    bad(
        "data-path-nested-traversal",
        "Submit",
        train(data={"source": "DATA_SOURCE_KIND_DIRECTORY", "path": "ok/../../etc"}),
        INVALID,
        "data.path",
    ),
    bad(
        "data-path-absolute",
        "Submit",
        train(data={"source": "DATA_SOURCE_KIND_DIRECTORY", "path": "/etc"}),
        INVALID,
        "data.path",
        "relative",
    ),
    bad(
        "data-path-missing",
        "Submit",
        train(data={"source": "DATA_SOURCE_KIND_DIRECTORY"}),
        INVALID,
        "data.path",
    ),
    bad("data-source-unknown", "Submit", train(data={"source": 99}), INVALID, "data.source"),
    bad("data-bars-too-few", "Submit", train(data={"bars": 10}), INVALID, "data.bars"),
    bad(
        "data-start-not-a-date",
        "Submit",
        train(data={"start": "yesterday"}),
        INVALID,
        "data.start",
        "ISO-8601",
    ),
    bad(
        "data-end-before-start",
        "Submit",
        train(data={"start": "2024-02-01", "end": "2024-01-01"}),
        INVALID,
        "data.end",
    ),
    # -- placement -----------------------------------------------------------------------------
    bad(
        "placement-mode-unknown", "Submit", train(placement={"mode": 99}), INVALID, "placement.mode"
    ),
    bad(
        "placement-unknown-node",
        "Submit",
        train(placement={"node": "gpu-box:50052"}),
        NOT_FOUND,
        "placement.node",
        "gpu-box:50052",
    ),
    bad(
        "placement-require-gpu",
        "Submit",
        train(placement={"require_gpu": True}),
        FAILED_PRECONDITION,
        "placement.require_gpu",
        "requires a GPU",
    ),
    bad(
        "placement-gpu-mode-no-fallback",
        "Submit",
        train(placement={"mode": "PLACEMENT_MODE_GPU", "allow_fallback": False}),
        FAILED_PRECONDITION,
        "placement.mode",
        "GPU",
    ),
    bad(
        "placement-named-cpu-node-require-gpu-no-fallback",
        "Submit",
        train(placement={"node": TRAINER, "require_gpu": True, "allow_fallback": False}),
        FAILED_PRECONDITION,
        "placement.node",
        "has no GPU",
    ),
    # -- jobs ----------------------------------------------------------------------------------
    bad("GetJob-empty-id", "GetJob", opb.GetJobRequest(), INVALID, "job_id", "required"),
    bad(
        "GetJob-traversal-id",
        "GetJob",
        opb.GetJobRequest(job_id="../../etc/passwd"),
        INVALID,
        "job_id",
        "not a job id",
    ),
    bad("CancelJob-empty-id", "CancelJob", opb.CancelJobRequest(), INVALID, "job_id"),
    bad(
        "WatchJob-traversal-id",
        "WatchJob",
        opb.WatchJobRequest(job_id="../x"),
        INVALID,
        "job_id",
        "not a job id",
    ),
    bad(
        "CancelJob-1MB-reason",
        "CancelJob",
        opb.CancelJobRequest(job_id="nope", reason=HUGE),
        INVALID,
        "reason",
        "at most 1024",
    ),
    bad(
        "WatchJob-unknown-negative-seq",
        "WatchJob",
        opb.WatchJobRequest(job_id="nope", after_seq=-1),
        NOT_FOUND,
        "job_id",
    ),
    bad(
        "ListJobs-negative-page-size",
        "ListJobs",
        opb.ListJobsRequest(page_size=-1),
        INVALID,
        "page_size",
    ),
    bad(
        "ListJobs-garbage-token",
        "ListJobs",
        opb.ListJobsRequest(page_token="garbage!"),
        INVALID,
        "page_token",
    ),
    bad(
        "ListJobs-unknown-state",
        "ListJobs",
        msg(opb.ListJobsRequest, {"states": [99]}),
        INVALID,
        "states",
    ),
    regression(
        bad(
            "ListJobs-forged-negative-token",
            "ListJobs",
            opb.ListJobsRequest(page_token=base64.urlsafe_b64encode(b"-1").decode()),
            INVALID,
            "page_token",
        ),
        "JobBook.list takes any base64 integer: a negative start is accepted and slices from "
        "the end (OK with a wrong page) instead of INVALID_ARGUMENT",
    ),
    regression(
        bad("GetJob-1MB-id", "GetJob", opb.GetJobRequest(job_id=HUGE), INVALID, "job_id"),
        "the message echoes the whole 1 MB id: RESOURCE_EXHAUSTED from the metadata limit",
    ),
    # -- models --------------------------------------------------------------------------------
    bad(
        "ListModels-negative-page-size",
        "ListModels",
        opb.ListModelsRequest(page_size=-1),
        INVALID,
        "page_size",
    ),
    bad(
        "ListModels-garbage-token",
        "ListModels",
        opb.ListModelsRequest(page_token="abc"),
        INVALID,
        "page_token",
    ),
    regression(
        bad(
            "ListModels-5000-digit-token",
            "ListModels",
            opb.ListModelsRequest(page_token="9" * 5000),
            INVALID,
            "page_token",
        ),
        "int() of a 5000-digit token raises ValueError (the int string limit): INTERNAL",
    ),
    bad(
        "ListJobs-5000-digit-token",
        "ListJobs",
        opb.ListJobsRequest(page_token="9" * 5000),
        INVALID,
        "page_token",
    ),
    bad(
        "ListModels-strategy-with-a-space",
        "ListModels",
        opb.ListModelsRequest(strategy="my strategy"),
        INVALID,
        "strategy",
    ),
    bad(
        "ListModels-1MB-strategy",
        "ListModels",
        opb.ListModelsRequest(strategy=HUGE),
        INVALID,
        "strategy",
    ),
    # -- nodes ---------------------------------------------------------------------------------
    regression(
        bad(
            "RegisterNode-1MB-host",
            "RegisterNode",
            opb.RegisterNodeRequest(address=HUGE + ":50052"),
            INVALID,
            "address",
            "HOST:PORT",
        ),
        "the host was kept, probed, and copied into every later 'no node serving' error",
    ),
    regression(
        bad(
            "RegisterNode-unix-target",
            "RegisterNode",
            opb.RegisterNodeRequest(address="unix:/run/trainer.sock:50052"),
            INVALID,
            "address",
        ),
        "a unix: target with a trailing :PORT passed the HOST:PORT check",
    ),
    regression(
        bad(
            "RegisterNode-non-ascii-port",
            "RegisterNode",
            opb.RegisterNodeRequest(address="gpu-host:\u0665\u0660\u0660\u0665\u0662"),
            INVALID,
            "address",
        ),
        "port.isdigit() takes Arabic-Indic digits",
    ),
    regression(
        bad(
            "ListModels-superscript-token",
            "ListModels",
            opb.ListModelsRequest(page_token="\u00b2"),
            INVALID,
            "page_token",
        ),
        "'²'.isdigit() is True but int('²') raises ValueError: INTERNAL",
    ),
    regression(
        bad("GetModel-1MB-name", "GetModel", opb.GetModelRequest(name=HUGE), INVALID, "name"),
        "the message echoes the whole 1 MB name: RESOURCE_EXHAUSTED from the metadata limit",
    ),
    bad(
        "GetModel-traversal",
        "GetModel",
        opb.GetModelRequest(name="../../etc/passwd"),
        INVALID,
        "name",
        "not a model name",
    ),
    bad(
        "GetModel-traversal-to-the-bait",
        "GetModel",
        opb.GetModelRequest(name="../etc/passwd"),
        INVALID,
        "name",
    ),
    bad("GetModel-dotdot-leaf", "GetModel", opb.GetModelRequest(name="etc/.."), INVALID, "name"),
    bad("GetModel-empty", "GetModel", opb.GetModelRequest(), INVALID, "name"),
    bad(
        "GetModel-absolute", "GetModel", opb.GetModelRequest(name="/etc/passwd"), NOT_FOUND, "name"
    ),
    bad(
        "GetModel-unknown",
        "GetModel",
        opb.GetModelRequest(name="default_fuzzy_mlp/SYNTH_1h_v1"),
        NOT_FOUND,
        "name",
        "ListModels",
    ),
    bad(
        "DownloadModel-unknown",
        "DownloadModel",
        opb.DownloadModelRequest(name="default_fuzzy_mlp/SYNTH_1h"),
        NOT_FOUND,
        "name",
    ),
    bad(
        "DownloadModel-traversal",
        "DownloadModel",
        opb.DownloadModelRequest(name="../etc/passwd"),
        INVALID,
        "name",
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """One cluster for the whole bad-input set (the same wiring as ``tests.conftest.cluster``).

    A bait model lies *beside* the models directory, where ``../etc/passwd`` would find it: a
    name that escaped the directory would read it (and fail on its contents as INTERNAL).
    """
    root = tmp_path_factory.mktemp("bad-input")
    bait = root / "state" / "etc" / "passwd_latest"
    bait.mkdir(parents=True)
    (bait / "metadata.json").write_text('{"repository": {"name": "BAIT"}}')
    async with start_cluster(root) as running:
        yield running


async def _call(stub: Any, rpc: str, request: Message) -> object:
    method = getattr(stub, rpc)
    if rpc in ("Train", "WatchJob", "DownloadModel"):
        return [item async for item in method(request)]
    return await method(request)


async def _assert_refused(cluster: Cluster, case: Bad) -> None:
    request = case.request
    if isinstance(request, spb.TrainRequest) and request.placement.node == TRAINER:
        named = spb.TrainRequest()
        named.CopyFrom(request)
        named.placement.node = cluster.trainer.address
        request = named
    for rpc in ("SubmitJob", "Train") if case.rpc == "Submit" else (case.rpc,):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(cluster.stub, rpc, request)
        details = err.value.details() or ""
        assert err.value.code() == case.code, f"{rpc}: {err.value.code()} {details[:300]}"
        assert case.needle in details, f"{rpc}: {details[:300]}"
        if case.field:
            assert field_violations(err.value) == [case.field], rpc
            assert details.startswith(f"{case.field}: "), details[:300]
        assert len(details) < 4096, f"{rpc}: a {len(details)}-character message"


def _models(cluster: Cluster) -> list[Path]:
    if not cluster.models_dir.exists():
        return []
    return sorted(p for p in cluster.models_dir.rglob("*") if not p.name.startswith("."))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_gets_the_precise_status_and_stores_nothing(
    shared_cluster: Cluster, case: Bad
) -> None:
    await _assert_refused(shared_cluster, case)
    jobs = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    assert list(jobs.jobs) == []
    assert _models(shared_cluster) == []


async def test_unknown_placement_device_is_refused_at_submit(cluster: Cluster) -> None:
    # On its own cluster: when the check was missing, this stored a job.
    case = Bad("Submit", train(placement={"device": "tpu"}), INVALID, "placement.device", "tpu")
    await _assert_refused(cluster, case)
    jobs = await cluster.stub.ListJobs(opb.ListJobsRequest())
    assert list(jobs.jobs) == []


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("rpc", ["SubmitJob", "Train"])
async def test_a_20_mb_request_is_refused_by_the_message_size_cap(
    shared_cluster: Cluster, rpc: str
) -> None:
    """The server's own cap: this channel would send it, the orchestrator must not take it."""
    request = spb.TrainRequest(
        symbols=["SYNTH"], timeframes=["1h"], strategy_yaml="#" * (20 * 1024 * 1024)
    )
    assert request.ByteSize() > plumbing.MAX_MESSAGE_BYTES
    big = 64 * 1024 * 1024
    async with grpc.aio.insecure_channel(
        shared_cluster.orchestrator.address,
        options=[("grpc.max_send_message_length", big), ("grpc.max_receive_message_length", big)],
    ) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(stub, rpc, request)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    jobs = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    assert list(jobs.jobs) == []


@pytest.mark.asyncio(loop_scope="module")
async def test_the_client_channel_refuses_to_send_20_mb(shared_cluster: Cluster) -> None:
    request = spb.TrainRequest(
        symbols=["SYNTH"], timeframes=["1h"], strategy_yaml="#" * (20 * 1024 * 1024)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shared_cluster.stub.SubmitJob(request)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def good_job(shared_cluster: Cluster) -> progress_pb2.ProgressEvent:
    """A small job trained to the end on the cluster that took every bad input above."""
    request = train({"training": {"epochs": 1}}, data={"bars": 1500}, request_id="good-1")
    events = [e async for e in shared_cluster.stub.Train(request)]
    return events[-1]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_service_still_serves_after_all_that(
    shared_cluster: Cluster, good_job: progress_pb2.ProgressEvent
) -> None:
    nodes = await shared_cluster.stub.ListNodes(opb.ListNodesRequest())
    assert [n.address for n in nodes.nodes] == [shared_cluster.trainer.address]
    assert good_job.state == progress_pb2.JOB_STATE_SUCCEEDED, good_job
    jobs = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    assert [j.job_id for j in jobs.jobs] == [good_job.job_id]
    model = await shared_cluster.stub.GetModel(opb.GetModelRequest(name=good_job.result.model.name))
    assert model.ref.sha256 == good_job.result.model.sha256
    # GetModel reads the metadata the way the upload checked it: metrics and features shown
    assert "accuracy" in model.training_metrics and "accuracy" in model.test_metrics
    assert model.feature_names


def _model_family(job: progress_pb2.ProgressEvent) -> str:
    return job.result.model.name.rsplit("_v", 1)[0]


AFTER_JOB: list[Any] = [
    pytest.param(
        lambda job: Bad(
            "WatchJob",
            opb.WatchJobRequest(job_id=job.job_id, after_seq=-1),
            INVALID,
            "after_seq",
            ">= 0",
        ),
        id="WatchJob-negative-after-seq",
    ),
    pytest.param(
        lambda job: Bad(
            "WatchJob",
            opb.WatchJobRequest(job_id=job.job_id, after_seq=job.seq + 1),
            grpc.StatusCode.OUT_OF_RANGE,
            "after_seq",
            f"has {job.seq} events",
        ),
        id="WatchJob-after-seq-past-the-end",
    ),
    pytest.param(
        lambda job: Bad(
            "WatchJob",
            opb.WatchJobRequest(job_id=job.job_id, after_seq=2**63 - 1),
            grpc.StatusCode.OUT_OF_RANGE,
            "after_seq",
        ),
        id="WatchJob-after-seq-int64-max",
    ),
    pytest.param(
        lambda job: Bad(
            "SubmitJob",
            train({"training": {"epochs": 2}}, data={"bars": 1500}, request_id="good-1"),
            grpc.StatusCode.ALREADY_EXISTS,
            "request_id",
            "good-1",
        ),
        id="SubmitJob-request-id-reused-for-another-request",
    ),
    pytest.param(
        lambda job: Bad(
            "GetModel", opb.GetModelRequest(name=f"{_model_family(job)}_v99"), NOT_FOUND, "name"
        ),
        id="GetModel-unknown-version",
    ),
    pytest.param(
        lambda job: Bad(
            "DownloadModel",
            opb.DownloadModelRequest(name=f"{job.result.model.strategy}/.."),
            INVALID,
            "name",
        ),
        id="DownloadModel-strategy-dotdot",
    ),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("make", AFTER_JOB)
async def test_bad_input_about_an_existing_job_or_model(
    shared_cluster: Cluster,
    good_job: progress_pb2.ProgressEvent,
    make: Callable[[progress_pb2.ProgressEvent], Bad],
) -> None:
    await _assert_refused(shared_cluster, make(good_job))
    jobs = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    assert [j.job_id for j in jobs.jobs] == [good_job.job_id]
    versions = sorted(shared_cluster.models_dir.glob("*/*_v*"))
    assert [v.relative_to(shared_cluster.models_dir).as_posix() for v in versions] == [
        good_job.result.model.name
    ]


# -- whole strings, caps, ranges, job size, unambiguous YAML --------------------------------------

_YAML = "name: x\nindicators: {r: {type: rsi}}\nfuzzy_sets: {z: {indicator: r, lo: [0, 1, 2]}}\n"


def _yaml(extra: str) -> spb.TrainRequest:
    return spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=_YAML + extra)


HARDENING = [
    bad("symbol-trailing-newline", "Submit", train(symbols=["SYNTH\n"]), INVALID, "symbols[0]"),
    bad(
        "timeframe-trailing-newline", "Submit", train(timeframes=["1h\n"]), INVALID, "timeframes[0]"
    ),
    bad(
        "strategy-name-trailing-newline",
        "Submit",
        train({"name": "name\n"}),
        INVALID,
        "strategy.name",
    ),
    bad(
        "device-trailing-newline",
        "Submit",
        train(placement={"device": "cpu\n"}),
        INVALID,
        "placement.device",
    ),
    bad("request-id-1MB", "Submit", train(request_id=HUGE), INVALID, "request_id", "128"),
    bad("request-id-newline", "Submit", train(request_id="a\nb"), INVALID, "request_id"),
    bad(
        "placement-node-unix-socket",
        "Submit",
        train(placement={"node": "unix:/tmp/x"}),
        INVALID,
        "placement.node",
    ),
    bad("placement-node-1MB", "Submit", train(placement={"node": HUGE}), INVALID, "placement.node"),
    bad(
        "data-path-1MB",
        "Submit",
        train(data={"source": "DATA_SOURCE_KIND_DIRECTORY", "path": HUGE}),
        INVALID,
        "data.path",
        "256",
    ),
    bad("data-start-1MB", "Submit", train(data={"start": HUGE}), INVALID, "data.start", "ISO-8601"),
    bad(
        "indicator-param-name-1MB",
        "Submit",
        train(rsi_strategy(indicators=[{**_RSI, "params": {HUGE: 14}}])),
        INVALID,
        "strategy.indicators[0].params",
    ),
    bad("data-seed-negative", "Submit", train(data={"seed": -1}), INVALID, "data.seed"),
    bad(
        "model-17-GiB",
        "Submit",
        train({"model": {"hidden_layers": [65536, 65536]}}),
        INVALID,
        "strategy.model.hidden_layers",
        "more than the limit of 50,000,000 parameters",
    ),
    bad(
        "bars-50M-x-64-symbols",
        "Submit",
        train(
            symbols=[f"S{i}" for i in range(64)],
            timeframes=["1m"],
            data={"source": "DATA_SOURCE_KIND_SYNTHETIC", "bars": 50_000_000},
        ),
        INVALID,
        "data.bars",
        "more than the limit of 20,000,000 bars",
    ),
    bad(
        "bars-past-2262",
        "Submit",
        train(data={"bars": 3_000_000}),
        INVALID,
        "data.bars",
        "2262",
    ),
    bad(
        "synthetic-window-after-the-market",
        "Submit",
        train(data={"start": "2030-01-01"}),
        INVALID,
        "data.start",
        "2020-01-01",
    ),
    bad(
        "yaml-seed-1e20",
        "Submit",
        _yaml("training: {seed: 100000000000000000000}\n"),
        INVALID,
        "strategy_yaml",
        "training.seed",
    ),
    bad(
        "yaml-patience-1e12",
        "Submit",
        _yaml("training: {early_stopping_patience: 1000000000000}\n"),
        INVALID,
        "strategy_yaml",
        "training.early_stopping_patience",
    ),
    bad(
        "yaml-learning-rate-1e400",
        "Submit",
        _yaml("training: {learning_rate: 1" + "0" * 400 + "}\n"),
        INVALID,
        "strategy_yaml",
        "training.learning_rate",
    ),
    bad(
        "yaml-5000-digit-integer",
        "Submit",
        _yaml("training: {seed: " + "9" * 5000 + "}\n"),
        INVALID,
        "strategy_yaml",
        "line 4",
    ),
    bad(
        "yaml-duplicate-epochs",
        "Submit",
        _yaml("training:\n  epochs: 1\n  epochs: 99999\n"),
        INVALID,
        "strategy_yaml",
        "training.epochs: duplicate key",
    ),
    bad(
        "yaml-start-not-a-date",
        "Submit",
        _yaml("training_data: {start: yesterday}\n"),
        INVALID,
        "strategy_yaml",
        "training_data.start",
    ),
    bad(
        "yaml-start-after-the-synthetic-market",
        "Submit",
        _yaml("training_data: {start: '2030-01-01'}\n"),
        INVALID,
        "strategy_yaml",
        "training_data.start",
    ),
    bad(
        "yaml-two-thresholds",
        "Submit",
        _yaml("training: {labels: {threshold: 0.02, zigzag_threshold: 0.05}}\n"),
        INVALID,
        "strategy_yaml",
        "zigzag_threshold",
    ),
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", HARDENING)
async def test_ambiguous_unbounded_or_oversized_input_is_refused_naming_the_field(
    shared_cluster: Cluster, case: Bad
) -> None:
    before = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    await _assert_refused(shared_cluster, case)
    after = await shared_cluster.stub.ListJobs(opb.ListJobsRequest())
    assert [j.job_id for j in after.jobs] == [j.job_id for j in before.jobs]
