"""The HTTP server's life: an aiohttp ``AppRunner`` and ``TCPSite`` on the orchestrator's own
event loop, with the gRPC port's token and TLS settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from shared.rpc.plumbing import Security

from .http_api import HttpApi
from .http_auth import server_ssl_context, token_middleware
from .http_errors import error_middleware

_LOGGER = logging.getLogger(__name__)
REQUEST_BODY_MAX = 64 * 1024
"""Largest request body (a cancel reason is at most 1024 characters)."""


def create_app(api: HttpApi, security: Security) -> web.Application:
    middlewares: list[Middleware] = [error_middleware]
    if security.token:
        middlewares.append(token_middleware(security.token))
    app = web.Application(middlewares=middlewares, client_max_size=REQUEST_BODY_MAX)
    app.add_routes(api.routes())
    return app


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; port 0 = any free port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--http-listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class HttpServer:
    runner: web.AppRunner
    port: int
    url: str
    """Where the dashboard is, e.g. ``http://127.0.0.1:8080/``."""

    async def stop(self) -> None:
        """Stop accepting and close every connection; SSE streams must already be ending
        (``JobBook.close``), so this returns in well under the grace."""
        await self.runner.cleanup()


async def start_http(
    listen: str, api: HttpApi, security: Security, grace_s: float = 5.0
) -> HttpServer:
    host, port = split_listen(listen)
    runner = web.AppRunner(
        create_app(api, security), access_log=None, shutdown_timeout=grace_s, handle_signals=False
    )
    await runner.setup()
    tls = server_ssl_context(security)
    site = web.TCPSite(runner, host, port, ssl_context=tls, reuse_port=False)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on {listen} (--http-listen): {exc.strerror}") from exc
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"{'https' if tls else 'http'}://{shown}:{bound}/"
    _LOGGER.info("HTTP API and dashboard on %s", url)
    return HttpServer(runner=runner, port=int(bound), url=url)
