"""The trainer node's Prometheus metrics: slots, running jobs, draining, events, uploads,
dataset files fetched."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.metrics import CANCEL_BUCKETS

from .jobs import JobRunner


class TrainerMetrics:
    def __init__(self, runner: JobRunner, device: str) -> None:
        self.registry = CollectorRegistry()
        self.cancel_latency = Histogram(
            "trainwire_trainer_cancel_latency_seconds",
            "Trainer.Cancel to the job's CANCELLED event (the next batch boundary)",
            buckets=CANCEL_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LiveState(runner, device))
        runner.on_cancelled = self.cancel_latency.observe


class _LiveState(Collector):
    def __init__(self, runner: JobRunner, device: str) -> None:
        self._runner = runner
        self._device = device

    def collect(self) -> Iterator[Metric]:
        running = self._runner.running()
        yield GaugeMetricFamily(
            "trainwire_trainer_slots", "Concurrent job slots", value=self._runner.slots
        )
        busy = GaugeMetricFamily(
            "trainwire_trainer_jobs_running", "Jobs running now", labels=["device"]
        )
        busy.add_metric([self._device], len(running))
        yield busy
        yield GaugeMetricFamily(
            "trainwire_trainer_draining",
            "1 while the node drains (SIGTERM) and takes no new jobs",
            value=0 if self._runner.accepting else 1,
        )
        datasets = self._runner.datasets
        yield CounterMetricFamily(
            "trainwire_trainer_dataset_files_fetched",
            "Dataset files downloaded from the orchestrator (a cached file is not fetched again)",
            value=datasets.files_fetched,
        )
        yield CounterMetricFamily(
            "trainwire_trainer_dataset_fetched_bytes",
            "Bytes of dataset files downloaded from the orchestrator",
            value=datasets.bytes_fetched,
        )
        yield CounterMetricFamily(
            "trainwire_trainer_events",
            "Progress events produced by the jobs this node holds",
            value=sum(len(run.events) for run in self._runner.runs()),
        )
