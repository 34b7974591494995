"""How the SDK calls: the default deadline and the retry policy, declared once for both clients.

Every unary call carries a deadline (``DEFAULT_TIMEOUT`` unless the client or the call says
otherwise), so a silent orchestrator ends in ``UnavailableError``/``DeadlineExceededError`` rather
than a hang. Streams (``train``, ``watch``, ``download``'s bytes, ``upload_dataset``) have none:
they last as long as the job or the transfer.

Idempotent reads are retried by gRPC itself, through the channel's service config: only on
``UNAVAILABLE`` (the call never reached a server that answered), a few attempts with exponential
backoff, all within the call's one deadline. Writes (``SubmitJob``, ``CancelJob``,
``DeleteDataset``) are never retried by the SDK.
"""

from __future__ import annotations

import json
from typing import Any

from shared.rpc.v1 import orchestrator_pb2 as opb

DEFAULT_TIMEOUT = 30.0
"""Seconds a unary call may take, retries included."""

SERVICE = opb.DESCRIPTOR.services_by_name["Orchestrator"].full_name

IDEMPOTENT_METHODS = (
    "GetJob",
    "ListJobs",
    "ListNodes",
    "ListModels",
    "GetModel",
    "GetDataset",
    "ListDatasets",
    "ListStrategies",
    "ListConfigurations",
    "GetConfiguration",
)

RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> str:
    """The ``grpc.service_config`` JSON: ``RETRY_POLICY`` on ``IDEMPOTENT_METHODS``."""
    names = [{"service": SERVICE, "method": method} for method in IDEMPOTENT_METHODS]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}]})
