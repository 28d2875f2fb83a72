"""The collector: Xray's per-user counters -> hourly, daily and total usage in the agent's SQLite.

Telling an Xray restart from a quiet period. Counters live in Xray's memory and start again at 0 when it
restarts; a counter that is lower than its stored position is therefore a restart. But a restarted Xray can
also have counted *more* than the old position before the next read, and then the drop is invisible. So the
collector marks the Xray process it reads: a runtime-only user (`AGENT_MARKER_EMAIL`, a fresh random id each time it is
planted, never in config.json and never given to anyone) is added when absent. A restarted Xray has lost it. The
positions are stored together with the marker's id; counters read from a process holding another marker (or
none) are new traffic in full. The marker is checked before and after reading, so a restart in the middle of a
read aborts the cycle instead of mixing two processes.

Each cycle's deltas and new positions are written in one SQLite transaction: if the write fails (or the agent
dies) nothing of the cycle is kept and the next read computes the same bytes again from the old positions.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ovpn.agent.counters import USER_COUNTER_PREFIX
from ovpn.agent.store import CycleWrite
from ovpn.agent.worker import XrayWorker
from ovpn.agent.xray_api import XrayApiError
from ovpn.core.model import AGENT_MARKER_EMAIL

log = logging.getLogger("ovpn-agent.collector")

GENERATION_KEY = "xray_generation"
SPIKE_BYTES = 1024**3


@dataclass
class CollectResult:
    ok: bool
    started_at: float
    duration_seconds: float = 0.0
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    users_seen: int = 0
    counter_resets: int = 0
    xray_restarted: bool = False
    api_failed: bool = False
    new_xray_process: bool = False  # Xray lacked the marker: a process the agent had not seen before
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "started_at": self.started_at,
            "duration_seconds": round(self.duration_seconds, 4),
            "users_seen": self.users_seen,
            "active_users": len({email for email, _ in self.deltas}),
            "bytes": sum(self.deltas.values()),
            "counter_resets": self.counter_resets,
            "xray_restarted": self.xray_restarted,
            "error": self.error,
        }


@dataclass(eq=False)
class Collector(XrayWorker):
    """One collection at a time (`lock` is shared with every other state-changing path of the agent)."""

    fault: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        metrics = self.metrics
        for result in ("success", "error", "retry"):
            metrics.declare_counter(
                "ovpn_agent_collector_runs_total", "Collections by result.", {"result": result}
            )
        metrics.declare_counter("ovpn_agent_collector_counter_resets_total", "Xray counters that went down.")
        metrics.declare_counter("ovpn_agent_xray_restarts_total", "Xray restarts the collector noticed.")
        metrics.declare_counter("ovpn_agent_user_spike_events_total", "Per-cycle deltas of 1 GiB or more.")
        # 0 until the first success, so that the staleness alert also fires for an agent that never collected.
        metrics.gauge(
            "ovpn_agent_collector_last_success_timestamp_seconds", "End of the last successful collection.", 0
        )

    def _marker(self) -> str | None:
        user = self.api.inbound_user(self.inbound_tag, AGENT_MARKER_EMAIL)
        return user.uuid if user is not None else None

    def _plant_marker(self) -> str:
        marker = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        self.api.add_vless_user(self.inbound_tag, AGENT_MARKER_EMAIL, marker)
        return marker

    def collect(self) -> CollectResult:
        with self.lock:
            return self._collect()

    def _collect(self) -> CollectResult:
        started, t0 = self.clock(), time.monotonic()
        result = CollectResult(ok=False, started_at=started)
        self.metrics.gauge(
            "ovpn_agent_collector_last_run_timestamp_seconds", "Start of the last collection.", started
        )
        try:
            before = self._marker()
            if before is None:
                before = self._plant_marker()
                result.new_xray_process = True
            counters = self.api.query_stats(USER_COUNTER_PREFIX)
            after = self._marker()
        except XrayApiError as e:
            result.api_failed = True
            return self._finish(result, t0, "error", str(e))
        if after != before:
            return self._finish(
                result, t0, "retry", "Xray restarted while its counters were read; next cycle"
            )
        stored = self.store.meta(GENERATION_KEY)
        fresh = stored != before
        try:
            outcome = self.store.write_cycle(
                CycleWrite(counters, before, fresh, self.clock()), fault=self.fault
            )
        except Exception as e:
            self.metrics.counter(
                "ovpn_agent_db_write_errors_total", "Failed database writes.", {"operation": "collect"}
            )
            log.warning("collection not written (it will be counted by the next one): %s", e)
            return self._finish(result, t0, "error", f"database write failed: {e}")
        result.ok = True
        result.deltas = outcome.deltas
        result.users_seen = outcome.users_seen
        result.counter_resets = outcome.counter_resets
        result.xray_restarted = fresh and stored is not None
        if result.xray_restarted:
            self.metrics.counter("ovpn_agent_xray_restarts_total", "Xray restarts the collector noticed.")
        if outcome.counter_resets:
            self.metrics.counter(
                "ovpn_agent_collector_counter_resets_total",
                "Xray counters that went down.",
                by=outcome.counter_resets,
            )
        spikes = sum(1 for delta in outcome.deltas.values() if delta >= SPIKE_BYTES)
        if spikes:
            self.metrics.counter(
                "ovpn_agent_user_spike_events_total", "Per-cycle deltas of 1 GiB or more.", by=spikes
            )
        self.metrics.gauge(
            "ovpn_agent_collector_users_seen", "Users with counters in Xray.", outcome.users_seen
        )
        self.metrics.gauge(
            "ovpn_agent_users_active",
            "Users with traffic in the last collection.",
            len({e for e, _ in outcome.deltas}),
        )
        self.metrics.gauge(
            "ovpn_agent_collector_last_success_timestamp_seconds",
            "End of the last successful collection.",
            self.clock(),
        )
        return self._finish(result, t0, "success", None)

    def _finish(self, result: CollectResult, t0: float, outcome: str, error: str | None) -> CollectResult:
        result.duration_seconds = time.monotonic() - t0
        result.error = error
        self.metrics.counter("ovpn_agent_collector_runs_total", "Collections by result.", {"result": outcome})
        self.metrics.histogram(
            "ovpn_agent_collector_duration_seconds", "Time one collection took.", result.duration_seconds
        )
        return result
