"""The Python client SDK: typed, sync and async, dataclass results, typed errors.

    from shared.client import Client

    with Client("localhost:50051") as tw:
        for event in tw.train(["SYNTH"], ["1h"], epochs=5):
            print(f"{event.percentage:5.1f}% {event.message}")
        print(event.result.model.name if event.result else event.error)

Real data: ``tw.train(["EURUSD"], ["1h"], data=data.directory("fx"))`` reads files on the
trainer (``shared.client.data`` also has ``dataset`` and ``synthetic``);
``tw.upload_dataset(["EURUSD.csv"], name="eurusd")`` uploads files from this machine.

No grpc or protobuf type reaches the caller: results are ``shared.jobs`` / ``shared.nodes`` /
``shared.client.types`` dataclasses and failures are ``shared.errors.TrainwireError``
subclasses (``.code`` the gRPC status name, ``.field`` the request field to fix).

Every unary call has a deadline (30 s; ``Client(timeout=...)`` or a call's ``timeout=``), and
reads are retried on ``UNAVAILABLE`` by gRPC (``shared.client.policy``). ``JobState.terminal``
says whether a state is final: ``if tw.job(job_id).state.terminal: ...``.
"""

from shared.client import data
from shared.client.aio import AsyncClient
from shared.client.sync import Client
from shared.client.types import Job, ModelInfo, TrainOptions
from shared.datasets import DatasetFile, DatasetInfo
from shared.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TrainwireError,
    UnauthenticatedError,
    UnavailableError,
)
from shared.jobs import DataProvenance, JobEvent, JobState, ModelAssessment, ModelRef
from shared.spec import DataSource, DataSpec

__all__ = [
    "AsyncClient",
    "Client",
    "DataProvenance",
    "DataSource",
    "DataSpec",
    "DatasetFile",
    "DatasetInfo",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Job",
    "JobEvent",
    "JobState",
    "ModelAssessment",
    "ModelInfo",
    "ModelRef",
    "NotFoundError",
    "TrainOptions",
    "TrainwireError",
    "UnauthenticatedError",
    "UnavailableError",
    "data",
]
