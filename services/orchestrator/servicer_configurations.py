"""The Orchestrator RPCs that list, show and download stored best configurations.

A mixin of ``OrchestratorServicer``: it reads ``self._configurations``, the orchestrator's
``ConfigurationRepository`` (``None``: this orchestrator stores none, FAILED_PRECONDITION).
Every name is checked by the repository before it becomes a path; every byte served is checked
against the sha256 it was stored with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from shared import errors
from shared.rpc import serde_results
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import orchestrator_pb2 as opb

from . import pages
from .configuration_document import check_strategy_filter
from .configurations import (
    KEY_SHAPE,
    ConfigurationRepository,
    StoredConfiguration,
    configuration_key,
)

Context = grpc.aio.ServicerContext[Any, Any]
CHUNK_BYTES = 256 * 1024
PAGE_KIND = "configurations"


class ConfigurationRpcs:
    _configurations: ConfigurationRepository | None

    def _configuration_repository(self) -> ConfigurationRepository:
        if self._configurations is None:
            raise errors.FailedPreconditionError("this orchestrator stores no configurations")
        return self._configurations

    async def _stored_configuration(self, name: str) -> tuple[StoredConfiguration, bytes]:
        repository = self._configuration_repository()

        def read() -> tuple[StoredConfiguration, bytes]:
            stored = repository.get(name)
            return stored, stored.read()

        return await asyncio.to_thread(read)

    @rpc_method
    async def ListConfigurations(
        self, request: opb.ListConfigurationsRequest, context: Context
    ) -> opb.ListConfigurationsResponse:
        repository = self._configuration_repository()
        size = pages.page_size(request.page_size, 100)
        strategy = check_strategy_filter(request.strategy)
        pages.decode_token(request.page_token, PAGE_KIND, KEY_SHAPE)  # before any disk
        refs = await asyncio.to_thread(repository.catalogue, strategy)
        found, token = pages.paginate(
            refs,
            kind=PAGE_KIND,
            key=configuration_key,
            shape=KEY_SHAPE,
            to_proto=serde_results.configuration_to_proto,
            page_token=request.page_token,
            size=size,
        )
        return opb.ListConfigurationsResponse(configurations=found, next_page_token=token)

    @rpc_method
    async def GetConfiguration(
        self, request: opb.GetConfigurationRequest, context: Context
    ) -> opb.Configuration:
        stored, data = await self._stored_configuration(request.name)
        return opb.Configuration(
            ref=serde_results.configuration_to_proto(stored.ref),
            configuration_json=data.decode("utf-8"),
        )

    @rpc_method
    async def DownloadConfiguration(
        self, request: opb.GetConfigurationRequest, context: Context
    ) -> AsyncIterator[opb.ConfigurationChunk]:
        stored, data = await self._stored_configuration(request.name)
        yield opb.ConfigurationChunk(header=serde_results.configuration_to_proto(stored.ref))
        for start in range(0, len(data), CHUNK_BYTES):
            yield opb.ConfigurationChunk(data=data[start : start + CHUNK_BYTES])
