"""The orchestrator's Prometheus metrics: jobs by state, events, queue, nodes, uploads, cancels."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.metrics import CANCEL_BUCKETS
from shared.nodes import NodeHealth

from .dispatch import Dispatcher
from .jobs import JobBook
from .registry import NodeRegistry


class OrchestratorMetrics:
    def __init__(self, book: JobBook, registry: NodeRegistry, dispatcher: Dispatcher) -> None:
        self.registry = CollectorRegistry()
        self.cancel_latency = Histogram(
            "trainwire_cancel_latency_seconds",
            "CancelJob call to the job's CANCELLED event",
            buckets=CANCEL_BUCKETS,
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "trainwire_upload_bytes",
            "Compressed model bytes received from trainers",
            registry=self.registry,
        )
        self.upload_duration = Histogram(
            "trainwire_upload_duration_seconds",
            "Duration of model uploads that ended in a stored model",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.registry.register(_LiveState(book, registry, dispatcher))
        book.on_cancelled = self.cancel_latency.observe

    def upload_stored(self, received_bytes: int, seconds: float) -> None:
        self.upload_bytes.inc(received_bytes)
        self.upload_duration.observe(seconds)


class _LiveState(Collector):
    def __init__(self, book: JobBook, nodes: NodeRegistry, dispatcher: Dispatcher) -> None:
        self._book = book
        self._nodes = nodes
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("trainwire_jobs", "Jobs by state", labels=["state"])
        for state, count in self._book.counts().items():
            jobs.add_metric([state.value], count)
        yield jobs
        yield CounterMetricFamily(
            "trainwire_events", "Progress events relayed", value=self._book.events_appended
        )
        yield GaugeMetricFamily(
            "trainwire_queue_length",
            "Jobs waiting for a free slot",
            value=self._dispatcher.queue_length,
        )
        up = GaugeMetricFamily(
            "trainwire_node_up", "1 when the node is SERVING", labels=["node", "device"]
        )
        slots = GaugeMetricFamily("trainwire_node_slots", "Job slots", labels=["node"])
        used = GaugeMetricFamily("trainwire_node_slots_used", "Slots in use", labels=["node"])
        probe = GaugeMetricFamily(
            "trainwire_node_probe_latency_seconds", "Last health probe", labels=["node"]
        )
        for status in self._nodes.statuses():
            device = status.info.device.kind.value if status.info else "unknown"
            up.add_metric([status.address, device], status.health is NodeHealth.SERVING)
            slots.add_metric([status.address], status.info.slots if status.info else 0)
            used.add_metric([status.address], status.slots_used)
            probe.add_metric([status.address], status.latency_ms / 1000.0)
        yield from (up, slots, used, probe)
