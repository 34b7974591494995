"""Fetch a stored model from the orchestrator for a model backtest.

The job names the model by its exact version (the orchestrator pins it at submit); the trainer
streams ``DownloadModel`` into the job's own directory, checks size and sha256 against the
stream's header, and only then renames it into place. The metadata the predictor needs is in
the safetensors header, so the weights file alone is enough.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

import grpc

from shared.artifacts.artifact import ARTIFACT_NAME
from shared.cancellation import CancellationToken
from shared.pipeline.market import DataError
from shared.rpc import plumbing, serde
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc

_LOGGER = logging.getLogger(__name__)
FETCH_DEADLINE_S = 600.0


async def fetch_model(
    *,
    orchestrator: str,
    name: str,
    job_dir: Path,
    security: plumbing.Security,
    cancel: CancellationToken,
) -> Path:
    """``job_dir/model/model.safetensors`` of model ``name``, verified; raise ``DataError``
    (the job fails with DATA_ERROR) when it cannot be had whole."""
    target = job_dir / "model"
    await asyncio.to_thread(target.mkdir, mode=0o700, parents=True, exist_ok=True)
    part = target / f"{ARTIFACT_NAME}.part"
    sha = hashlib.sha256()
    size = 0
    expected_size, expected_sha = -1, ""
    out = await asyncio.to_thread(part.open, "wb")
    try:
        async with plumbing.create_channel(orchestrator, security) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            call = stub.DownloadModel(opb.DownloadModelRequest(name=name), timeout=FETCH_DEADLINE_S)
            async for chunk in call:
                cancel.raise_if_cancelled()
                if chunk.WhichOneof("kind") == "header":
                    ref = serde.model_ref_from_proto(chunk.header)
                    expected_size, expected_sha = ref.size_bytes, ref.sha256
                    continue
                size += len(chunk.data)
                if expected_size >= 0 and size > expected_size:
                    raise DataError("", "", f"model {name}: more bytes than its {expected_size}")
                sha.update(chunk.data)
                await asyncio.to_thread(out.write, chunk.data)
    except grpc.aio.AioRpcError as exc:
        raise DataError(
            "",
            "",
            f"cannot fetch model {name} from the orchestrator: {exc.code().name}: {exc.details()}",
        ) from exc
    finally:
        await asyncio.to_thread(out.close)
    if size != expected_size or sha.hexdigest() != expected_sha:
        await asyncio.to_thread(part.unlink, True)
        raise DataError(
            "",
            "",
            f"model {name} arrived damaged ({size} of {expected_size} bytes, sha256 "
            f"{sha.hexdigest()[:12]} for {expected_sha[:12]}); nothing was kept",
        )
    final = target / ARTIFACT_NAME
    await asyncio.to_thread(os.replace, part, final)
    _LOGGER.info("fetched model %s (%d bytes)", name, size)
    return target
