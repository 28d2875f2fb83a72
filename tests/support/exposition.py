"""Reading one sample out of a Prometheus text exposition (what /metrics answers)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
    ]


def sample(text: str, series: str) -> float | None:
    """The value of `series`, a metric name with its labels (`name{a="b",c="d"}`, in any order); None when absent."""
    [(name, labels, _)] = _samples(f"{series} 0\n")
    values = [value for n, lab, value in _samples(text) if (n, lab) == (name, labels)]
    assert len(values) <= 1, f"{series} is exported {len(values)} times"
    return values[0] if values else None
