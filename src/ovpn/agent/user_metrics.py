"""The agent's per-user and per-policy metrics, read from its database at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ovpn.agent.store import expiring_soon, expiry_cutoff

if TYPE_CHECKING:
    from ovpn.agent.service import Agent

Row = dict[str, Any]

PER_USER: tuple[tuple[str, str, Callable[[Row], float]], ...] = (
    ("ovpn_agent_user_window_30d_usage_bytes", "Bytes in the rolling 30-day quota window.",
     lambda r: r["window_30d_usage_bytes"]),
    ("ovpn_agent_user_window_30d_quota_bytes", "The user's 30-day quota.", lambda r: r["quota_bytes"]),
    ("ovpn_agent_user_quota_usage_ratio", "Used share of the quota (1 = quota reached).",
     lambda r: r["quota_usage_ratio"]),
    ("ovpn_agent_user_quota_blocked", "1 while the quota blocks the user.", lambda r: int(r["blocked_by_quota"])),
    ("ovpn_agent_user_expiry_timestamp_seconds", "When the user expires (00:00 UTC after the expiry date); 0 = never.",
     lambda r: expiry_cutoff(r["expiry"]) or 0),
    ("ovpn_agent_user_expired", "1 once the user has expired.", lambda r: int(r["expired"])),
    ("ovpn_agent_user_effective_enabled", "1 while enabled and not expired.", lambda r: int(r["effective_enabled"])),
)  # fmt: skip


class UserMetrics:
    """A prometheus_client collector over the agent's traffic totals, user rows and policy."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        traffic = CounterMetricFamily(
            "ovpn_agent_user_traffic_bytes_total", "Bytes counted per user and direction.",
            labels=("email", "direction"),
        )  # fmt: skip
        for email, (up, down) in sorted(agent.store.totals().items()):
            traffic.add_metric((email, "uplink"), up)
            traffic.add_metric((email, "downlink"), down)
        yield traffic
        rows = agent.user_rows(None)
        for name, help_text, value in PER_USER:
            family = GaugeMetricFamily(name, help_text, labels=("email",))
            for row in rows:
                family.add_metric((row["email"],), value(row))
            yield family
        now = agent.clock()
        ratios = [float(r["quota_usage_ratio"]) for r in rows]
        summary: tuple[tuple[str, str, float], ...] = (
            ("ovpn_agent_quota_blocked_users", "Users the quota blocks.", sum(1 for r in rows if r["blocked_by_quota"])),
            ("ovpn_agent_quota_users_over_80", "Users at 80% of their quota or more.", sum(1 for x in ratios if x >= 0.8)),
            ("ovpn_agent_quota_users_over_95", "Users at 95% of their quota or more.", sum(1 for x in ratios if x >= 0.95)),
            ("ovpn_agent_users_expired", "Expired users.", sum(1 for r in rows if r["expired"])),
            ("ovpn_agent_users_expiring_2d", "Users expiring within two days.",
             sum(1 for r in rows if expiring_soon(r["expiry"], now))),
            ("ovpn_agent_policy_users", "Users in the synced policy.", len(rows)),
        )  # fmt: skip
        for name, help_text, count in summary:
            yield GaugeMetricFamily(name, help_text, value=count)
