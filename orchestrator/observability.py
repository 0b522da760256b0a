"""The process's Prometheus side: the latency histograms the channel adapters feed, and the
exposition of everything (`/metrics`), database counts included (orchestrator/metrics.py).

Each `Resources` gets its own registry rather than the global one, so several apps in one
process (the tests) never register a metric twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from orchestrator.metrics import DatabaseMetrics, families

# Seconds; the Send API answers in tens of milliseconds, SMTP relays in up to seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class ProcessMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    graph: Histogram = field(init=False)
    smtp: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.graph = Histogram(
            "outreach_graph_request_seconds",
            "Graph API request latency, by endpoint and outcome (ok or the error class).",
            ("endpoint", "outcome"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.smtp = Histogram(
            "outreach_smtp_send_seconds",
            "SMTP send latency, from taking a connection to the relay's answer, by outcome.",
            ("outcome",),
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def on_graph_response(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.graph.labels(endpoint=endpoint, outcome=outcome).observe(seconds)

    def on_smtp_send(self, outcome: str, seconds: float) -> None:
        self.smtp.labels(outcome=outcome).observe(seconds)


class _Reading(Collector):
    def __init__(self, reading: DatabaseMetrics) -> None:
        self._reading = reading

    def collect(self) -> Iterator[Metric]:
        for family in families(self._reading):
            metric: CounterMetricFamily | GaugeMetricFamily
            if family.kind == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=family.label_names)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=family.label_names)
            for sample in family.samples:
                metric.add_metric([value for _, value in sample.labels], sample.value)
            yield metric


def exposition(process: ProcessMetrics, reading: DatabaseMetrics) -> bytes:
    """The text format: this process's histograms, then the database's counts. The reading is
    exposed straight from its collector: a registry would collect it once more to describe it."""
    return generate_latest(process.registry) + generate_latest(_Reading(reading))
