"""Prometheus ``/metrics`` for a service: one registry per server, served over HTTP.

Each server builds its own ``CollectorRegistry`` (several servers may share a process in tests)
with collectors that read the service's live state at scrape time — nothing is counted twice
and the hot paths carry no metrics code beyond a few counters and histograms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

_LOGGER = logging.getLogger(__name__)

CANCEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds; the goals are tens of milliseconds, so the buckets are fine there."""


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(listen: str, registry: CollectorRegistry) -> MetricsServer | None:
    """Serve ``registry`` on ``http://listen/metrics``; an empty ``listen`` serves nothing."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
    bound = int(server.server_port)
    _LOGGER.info("metrics on http://%s:%d/metrics", host or "0.0.0.0", bound)
    return MetricsServer(server=server, thread=thread, port=bound)
