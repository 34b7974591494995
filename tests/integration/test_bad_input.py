"""Bad input gets a precise status and a message that says what to change; nothing is stored."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.conftest import Cluster

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
    from google.protobuf import json_format

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
