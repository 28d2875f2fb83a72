"""Figures from probe records: failover outcomes and latency percentiles (shared by tests and bench/)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SLOW_SETUP_MS = 500.0
"""A new connection that takes longer than this to deliver its first byte counts as not yet recovered.

On this lab a healthy setup through the proxy takes 10-20 ms; a connection stuck behind a dead or silent
backend takes at least HAProxy's connect timeout or retry turn-around (about 1 s).
"""


@dataclass(frozen=True)
class Failover:
    """What new connections saw after a fault at `event` (wall-clock seconds)."""

    attempts: int  # new connections started at or after the fault
    failed: int  # of those, how many did not get a complete 200 response
    slow: int  # succeeded, but set up slower than SLOW_SETUP_MS
    broken_in_flight: int  # connections started before the fault that failed
    recovery_s: float | None  # from the fault to the first attempt after which every one succeeds fast
    max_setup_ms: float  # slowest successful setup after the fault
    window_s: float  # how long after the fault attempts were started

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def failover(records: Sequence[dict[str, Any]], event: float, slow_ms: float = SLOW_SETUP_MS) -> Failover:
    after = [r for r in records if r["start"] >= event]
    before = [r for r in records if r["start"] < event]
    failed = [r for r in after if not r["ok"]]
    slow = [r for r in after if r["ok"] and r.get("setup_ms", math.inf) > slow_ms]
    bad_starts = [r["start"] for r in failed + slow]
    recovery: float | None = 0.0
    if bad_starts:
        last_bad = max(bad_starts)
        later = [r["start"] for r in after if r["start"] > last_bad]
        recovery = (min(later) - event) if later else None
    setups = [r["setup_ms"] for r in after if r["ok"] and "setup_ms" in r]
    return Failover(
        attempts=len(after),
        failed=len(failed),
        slow=len(slow),
        broken_in_flight=sum(1 for r in before if not r["ok"] and r["end"] >= event),
        recovery_s=recovery,
        max_setup_ms=max(setups, default=0.0),
        window_s=(max(r["start"] for r in after) - event) if after else 0.0,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p50 of 200 values is the 100th smallest, p99 the 198th)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
