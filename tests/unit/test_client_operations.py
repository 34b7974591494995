"""The unary SDK methods, written once (``shared.client.operations``) for both clients: driven
here by hand, with no channel, as ``Client._run`` and ``AsyncClient._run`` drive them."""

from __future__ import annotations

from typing import TypeVar

import pytest
from google.protobuf.message import Message

from shared.client import JobState
from shared.client import operations as op
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb

_T = TypeVar("_T")


def job(job_id: str) -> ppb.Job:
    return ppb.Job(job_id=job_id, state=ppb.JOB_STATE_QUEUED)


def drive(operation: op.Operation[_T], replies: list[Message]) -> tuple[_T, list[op.Unary]]:
    calls: list[op.Unary] = []
    try:
        calls.append(next(operation))
        for reply in replies:
            calls.append(operation.send(reply))
    except StopIteration as done:
        return done.value, calls
    raise AssertionError(f"the operation wanted more than {len(replies)} replies")


def test_jobs_pages_until_the_limit_with_each_calls_timeout() -> None:
    pages: list[Message] = [
        opb.ListJobsResponse(jobs=[job("a"), job("b")], next_page_token="t"),
        opb.ListJobsResponse(jobs=[job("c")], next_page_token="u"),
    ]
    jobs, calls = drive(op.jobs([JobState.RUNNING], 3, 2.5), pages)
    assert [j.job_id for j in jobs] == ["a", "b", "c"]
    assert [c.method for c in calls] == ["ListJobs", "ListJobs"]
    assert {c.timeout for c in calls} == {2.5}
    first, second = (c.request for c in calls)
    assert isinstance(first, opb.ListJobsRequest) and isinstance(second, opb.ListJobsRequest)
    assert (first.page_size, first.page_token) == (3, "")
    assert (second.page_size, second.page_token) == (1, "t")


def test_a_reply_of_the_wrong_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="ListNodesResponse"):
        drive(op.nodes(None), [ppb.Job()])


def test_submit_builds_the_request_from_typed_options() -> None:
    submitted, [call] = drive(
        op.submit(["SYNTH"], ["1h"], None, {"epochs": 3, "request_id": "r1"}),
        [job("j1")],
    )
    assert submitted.job_id == "j1" and call.method == "SubmitJob" and call.timeout is None
    assert call.request.request_id == "r1"  # type: ignore[attr-defined]
