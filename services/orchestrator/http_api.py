"""The orchestrator's HTTP API (``/api/v1/``) and dashboard (``/``), beside the gRPC port.

aiohttp, because it runs inside the orchestrator's own asyncio loop (``web.AppRunner`` and
``web.TCPSite``): no second server process and no thread, so handlers read the very ``JobBook``
the gRPC servicer reads; and its ``StreamResponse`` is a mature way to hold thousands of
Server-Sent Event streams open. Starlette would need uvicorn, a server of its own.

Every read and control route calls the gRPC servicer's own method (the undecorated body, with
a request message built from the path and query), so the two APIs cannot drift: the same
validation, the same field-precise errors, the same page tokens; replies are the same messages
in the proto JSON mapping (camelCase names, enum names, int64 as strings), the form grpcurl
prints. A method the servicer does not implement yet answers 501 ``UNIMPLEMENTED``.

Routes (JSON unless said; errors as in ``http_errors``):

- ``GET /api/v1/jobs?state=RUNNING&state=QUEUED&page_size=50&page_token=T`` (ListJobs;
  ``&view=summary`` leaves each job's request and result out)
- ``GET /api/v1/jobs/{id}`` (GetJob: the progress snapshot)
- ``GET /api/v1/jobs/{id}/events`` (``text/event-stream``; ``http_sse``)
- ``POST /api/v1/jobs/{id}/cancel`` with an optional body ``{"reason": "..."}`` (CancelJob)
- ``GET /api/v1/nodes`` (ListNodes), ``GET /api/v1/strategies`` (ListStrategies)
- ``GET /api/v1/models?strategy=S``, ``GET /api/v1/models/{name}`` and
  ``GET /api/v1/models/{name}/download`` (model.safetensors); the same three for
  ``configurations`` (configuration.json). Names contain '/'.
- ``GET /healthz`` (open, no token): 200 while serving, 503 while stopping.
- ``GET /`` the dashboard, and its scripts and style sheet (``web/``, shipped in the package;
  plain ES modules and inline SVG, nothing fetched from elsewhere).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from shared import errors
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb

from .http_errors import json_dumps
from .http_params import cancel_reason, int32_param, parse_states, query_params
from .http_sse import EventFrames, stream_events
from .jobs import JobBook

_LOGGER = logging.getLogger(__name__)
API = "/api/v1"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
JSON_CACHE_ENTRIES = 20_000
"""Listed jobs whose JSON is kept (each a few hundred bytes in the summary view)."""
_BASE = orchestrator_pb2_grpc.OrchestratorServicer


def to_json(message: Message) -> dict[str, Any]:
    """A message in the proto JSON mapping, as grpcurl prints it (defaults left out)."""
    document: dict[str, Any] = json_format.MessageToDict(message)
    return document


class JsonCache:
    """The proto JSON of recent messages, keyed by their exact bytes (so never stale)."""

    def __init__(self, capacity: int = JSON_CACHE_ENTRIES) -> None:
        self._capacity = capacity
        self._documents: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def of(self, message: Message) -> dict[str, Any]:
        key = message.SerializeToString(deterministic=True)
        document = self._documents.get(key)
        if document is None:
            document = to_json(message)
            self._documents[key] = document
            if len(self._documents) > self._capacity:
                self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(key)
        return document


def _reply(message: Message) -> web.Response:
    return web.Response(text=json_dumps(to_json(message)), content_type="application/json")


@dataclass(frozen=True)
class _Download:
    """How one download route names and types its file."""

    rpc: str
    request: Callable[[str], Message]
    suffix: str
    content_type: str


class HttpApi:
    """The routes, over the servicer and job book the gRPC port uses."""

    def __init__(self, *, book: JobBook, servicer: _BASE) -> None:
        self._book = book
        self._servicer = servicer
        self._frames = EventFrames()
        self._jobs_json = JsonCache()
        web_dir = resources.files(__package__) / "web"
        self._assets = {
            entry.name: entry.read_bytes()
            for entry in web_dir.iterdir()
            if entry.is_file() and "." + entry.name.rpartition(".")[2] in CONTENT_TYPES
        }

    # -- calling the servicer ------------------------------------------------------------------

    def _method(self, name: str) -> Callable[..., Any]:
        method = getattr(type(self._servicer), name, None)
        if method is None or method is getattr(_BASE, name, None):
            raise errors.UnimplementedError(
                f"this orchestrator does not serve {name}", reason="UNIMPLEMENTED"
            )
        unwrapped: Callable[..., Any] = inspect.unwrap(method)
        return unwrapped

    async def _unary(self, name: str, request: Message) -> Message:
        call: Callable[[Any, Message, None], Awaitable[Message]] = self._method(name)
        return await call(self._servicer, request, None)

    def _stream(self, name: str, request: Message) -> AsyncIterator[Any]:
        call: Callable[[Any, Message, None], AsyncIterator[Any]] = self._method(name)
        return call(self._servicer, request, None)

    # -- routes --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        models = _Download(
            "DownloadModel", _model_request, ".safetensors", "application/octet-stream"
        )
        configurations = _Download(
            "DownloadConfiguration", _configuration_request, ".json", "application/json"
        )
        return [
            web.get("/healthz", self.health),
            web.get("/", self.asset),
            web.get("/{asset:[a-z_]+\\.(?:js|css)}", self.asset),
            web.get(f"{API}/jobs", self.list_jobs),
            web.get(f"{API}/jobs/{{job_id}}", self.get_job),
            web.get(f"{API}/jobs/{{job_id}}/events", self.job_events),
            web.post(f"{API}/jobs/{{job_id}}/cancel", self.cancel_job),
            web.get(f"{API}/nodes", self.list_nodes),
            web.get(f"{API}/strategies", self.list_strategies),
            web.get(f"{API}/models", self.list_models),
            web.get(f"{API}/models/{{name:.+}}/download", self._download(models)),
            web.get(f"{API}/models/{{name:.+}}", self.get_model),
            web.get(f"{API}/configurations", self.list_configurations),
            web.get(f"{API}/configurations/{{name:.+}}/download", self._download(configurations)),
            web.get(f"{API}/configurations/{{name:.+}}", self.get_configuration),
        ]

    async def health(self, request: web.Request) -> web.Response:
        query_params(request, ())
        serving = not self._book.closing
        return web.json_response(
            {"status": "SERVING" if serving else "NOT_SERVING"}, status=200 if serving else 503
        )

    async def asset(self, request: web.Request) -> web.Response:
        query_params(request, ())
        name = request.match_info.get("asset", "index.html")
        body = self._assets.get(name)
        if body is None:
            raise errors.NotFoundError(f"no file {name!r} in the dashboard", field="path")
        return web.Response(
            body=body,
            content_type=CONTENT_TYPES["." + name.rpartition(".")[2]],
            charset="utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def list_jobs(self, request: web.Request) -> web.Response:
        query = query_params(request, ("state", "states", "page_size", "page_token", "view"))
        states = parse_states([*query.getall("state", []), *query.getall("states", [])])
        view = query.get("view", "full")
        if view not in ("full", "summary"):
            raise errors.InvalidArgumentError(
                f"{view[:40]!r} is not a view; use full (the default) or summary (each job "
                "without its request and result)",
                field="view",
            )
        message = opb.ListJobsRequest(
            states=states,
            page_size=int32_param(query, "page_size"),
            page_token=query.get("page_token", ""),
        )
        reply = await self._unary("ListJobs", message)
        assert isinstance(reply, opb.ListJobsResponse)
        if view == "summary":
            for job in reply.jobs:
                _summarise(job)
        # The mapping of ListJobsResponse, one job at a time through the cache: a dashboard
        # polls the same thousand jobs every second, and most have not changed.
        document: dict[str, Any] = {}
        if reply.jobs:
            document["jobs"] = [self._jobs_json.of(job) for job in reply.jobs]
        if reply.next_page_token:
            document["nextPageToken"] = reply.next_page_token
        return web.Response(text=json_dumps(document), content_type="application/json")

    async def get_job(self, request: web.Request) -> web.Response:
        query_params(request, ())
        message = opb.GetJobRequest(job_id=request.match_info["job_id"])
        return _reply(await self._unary("GetJob", message))

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        query_params(request, ("after_seq",))
        return await stream_events(request, self._book, self._frames, request.match_info["job_id"])

    async def cancel_job(self, request: web.Request) -> web.Response:
        query_params(request, ())
        reason = await cancel_reason(request)
        message = opb.CancelJobRequest(job_id=request.match_info["job_id"], reason=reason)
        return _reply(await self._unary("CancelJob", message))

    async def list_nodes(self, request: web.Request) -> web.Response:
        query_params(request, ())
        return _reply(await self._unary("ListNodes", opb.ListNodesRequest()))

    async def list_strategies(self, request: web.Request) -> web.Response:
        query_params(request, ())
        return _reply(await self._unary("ListStrategies", opb.ListStrategiesRequest()))

    async def list_models(self, request: web.Request) -> web.Response:
        query = query_params(request, ("strategy", "page_size", "page_token"))
        message = opb.ListModelsRequest(
            strategy=query.get("strategy", ""),
            page_size=int32_param(query, "page_size"),
            page_token=query.get("page_token", ""),
        )
        return _reply(await self._unary("ListModels", message))

    async def get_model(self, request: web.Request) -> web.Response:
        query_params(request, ())
        return _reply(await self._unary("GetModel", _model_request(request.match_info["name"])))

    async def list_configurations(self, request: web.Request) -> web.Response:
        query = query_params(request, ("strategy", "page_size", "page_token"))
        message = opb.ListConfigurationsRequest(
            strategy=query.get("strategy", ""),
            page_size=int32_param(query, "page_size"),
            page_token=query.get("page_token", ""),
        )
        return _reply(await self._unary("ListConfigurations", message))

    async def get_configuration(self, request: web.Request) -> web.Response:
        query_params(request, ())
        message = _configuration_request(request.match_info["name"])
        return _reply(await self._unary("GetConfiguration", message))

    def _download(self, kind: _Download) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def download(request: web.Request) -> web.StreamResponse:
            query_params(request, ())
            chunks = aiter(self._stream(kind.rpc, kind.request(request.match_info["name"])))
            header = (await anext(chunks)).header  # NOT_FOUND etc. before any byte is sent
            leaf = header.name.rsplit("/", 1)[-1]
            response = web.StreamResponse(
                headers={
                    "Content-Type": kind.content_type,
                    "Content-Disposition": f'attachment; filename="{leaf}{kind.suffix}"',
                    "ETag": f'"{header.sha256}"',
                    "X-Trainwire-Name": header.name,
                    "X-Trainwire-Sha256": header.sha256,
                    "X-Trainwire-Version": str(header.version),
                }
            )
            await response.prepare(request)
            try:
                async for chunk in chunks:
                    await response.write(chunk.data)
            except ConnectionError:
                return response  # the client went away
            except Exception:
                # Half a file must not look like a whole one: cut the connection, so the
                # client sees a broken transfer rather than a short body.
                _LOGGER.exception("HTTP download of %s failed", header.name)
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
            return response

        return download


def _summarise(job: ppb.Job) -> None:
    """``view=summary``: the job without its request as submitted and its result, which are
    most of its bytes; the table of jobs needs neither."""
    for name in ("request", "backtest", "optimize", "result", "backtest_result", "optimize_result"):
        job.ClearField(name)


def _model_request(name: str) -> opb.GetModelRequest:
    return opb.GetModelRequest(name=name)


def _configuration_request(name: str) -> opb.GetConfigurationRequest:
    return opb.GetConfigurationRequest(name=name)


__all__ = ["HttpApi", "to_json"]
