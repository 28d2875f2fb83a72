"""A small Prometheus text-format registry (standard library only): counters, gauges and one histogram kind."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

Labels = tuple[tuple[str, str], ...]

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Labels | Mapping[str, str]) -> str:
    items = labels.items() if isinstance(labels, Mapping) else labels
    inner = ",".join(f'{k}="{escape(v)}"' for k, v in items)
    return f"{{{inner}}}" if inner else ""


def format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help = name, kind, help_text
        self.values: dict[Labels, float] = {}

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, Family] = {}
        self._histograms: dict[str, tuple[str, Sequence[float], list[int], list[float]]] = {}

    def _family(self, name: str, kind: str, help_text: str) -> Family:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = Family(name, kind, help_text)
        return family

    def counter(
        self, name: str, help_text: str, labels: Mapping[str, str] | None = None, by: float = 1
    ) -> None:
        with self._lock:
            family = self._family(name, "counter", help_text)
            key = tuple(sorted((labels or {}).items()))
            family.values[key] = family.values.get(key, 0) + by

    def declare_counter(self, name: str, help_text: str, labels: Mapping[str, str] | None = None) -> None:
        """Make a counter visible at 0 before its first increment."""
        self.counter(name, help_text, labels, by=0)

    def gauge(self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._family(name, "gauge", help_text).values[tuple(sorted((labels or {}).items()))] = value

    def histogram(
        self, name: str, help_text: str, value: float, buckets: Sequence[float] = DURATION_BUCKETS
    ) -> None:
        with self._lock:
            entry = self._histograms.get(name)
            if entry is None:
                entry = self._histograms[name] = (help_text, tuple(buckets), [0] * len(buckets), [0.0, 0.0])
            _, bounds, counts, sums = entry
            for i, bound in enumerate(bounds):
                if value <= bound:
                    counts[i] += 1
            sums[0] += value
            sums[1] += 1

    def render(self) -> list[str]:
        lines: list[str] = []
        with self._lock:
            for family in self._families.values():
                lines += family.header()
                for labels, value in family.values.items():
                    lines.append(f"{family.name}{format_labels(labels)} {format_value(value)}")
            for name, (help_text, bounds, counts, sums) in self._histograms.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for bound, count in zip(bounds, counts, strict=True):
                    lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
                lines.append(f'{name}_bucket{{le="+Inf"}} {int(sums[1])}')
                lines.append(f"{name}_sum {sums[0]!r}")
                lines.append(f"{name}_count {int(sums[1])}")
        return lines


def family_lines(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    """A family computed at scrape time (per-user values read from the database)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{format_labels(labels)} {format_value(value)}" for labels, value in samples]
    return lines
