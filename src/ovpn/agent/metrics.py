"""The agent's and the bot's metrics, on prometheus_client, addressed by name.

Call sites name a metric where they change it (`counter(name, help, labels)`): the first use creates it, with
the label names of that first use, sorted. Values read at scrape time (per-user figures from the database) come
from a `prometheus_client` collector added with `Registry.add`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

# No `*_created` series next to every counter and histogram: the alert rules and dashboards know the names
# exported without them, and a scrape stays the size it was.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client 0.26

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Registry:
    def __init__(self) -> None:
        self._registry = CollectorRegistry()
        self._metrics: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _metric(
        self, kind: type[Counter | Gauge | Histogram], name: str, help_text: str,
        labels: Mapping[str, str] | None, label_names: Sequence[str] = (), **options: Any,
    ) -> Any:  # fmt: skip
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                names = sorted(labels or label_names)
                metric = kind(name, help_text, names, registry=self._registry, **options)
                self._metrics[name] = metric
        return metric.labels(**labels) if labels else metric

    def counter(
        self, name: str, help_text: str, labels: Mapping[str, str] | None = None, by: float = 1
    ) -> None:
        self._metric(Counter, name, help_text, labels).inc(by)

    def declare_counter(
        self,
        name: str,
        help_text: str,
        labels: Mapping[str, str] | None = None,
        label_names: Sequence[str] = (),
    ) -> None:
        """Make a counter visible at 0 before its first increment; with `label_names` instead of `labels` (values
        not known in advance), only its HELP and TYPE until then."""
        self._metric(Counter, name, help_text, labels, label_names)

    def gauge(self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self._metric(Gauge, name, help_text, labels).set(value)

    def histogram(
        self, name: str, help_text: str, value: float, buckets: Sequence[float] = DURATION_BUCKETS
    ) -> None:
        self._metric(Histogram, name, help_text, None, buckets=buckets).observe(value)

    def add(self, collector: Collector) -> None:
        """Export what `collector` reads at each scrape."""
        self._registry.register(collector)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self._registry).decode()
