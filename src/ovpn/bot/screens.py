"""The texts of the bot's screens, from data already fetched (pure; Telegram HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from ovpn.bot.docker_api import ContainerState
from ovpn.bot.probes import Fetched

LIST_LIMIT = 30


@dataclass(frozen=True)
class ServiceRow:
    name: str
    container: str
    state: ContainerState | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is not None and self.state.ok

    def describe(self) -> str:
        return self.state.describe() if self.state is not None else (self.error or "unknown")


Level = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str  # HTML


MARKS = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def agent_summary(agent: Fetched) -> tuple[Level, str]:
    """The agent's health as a check level and a short HTML text."""
    if agent.error or not isinstance(agent.document, dict):
        return "fail", escape(agent.error or "no answer")
    status = str(agent.document.get("status", "unknown"))
    xray = agent.document.get("xray_api") or {}
    detail = "" if xray.get("up") else f" (Xray API: {escape(str(xray.get('error') or 'down'))})"
    return ("pass" if status == "ok" else "warn"), f"{escape(status)}{detail}"


def agent_line(agent: Fetched) -> str:
    level, text = agent_summary(agent)
    return f"agent: {MARKS[level]} {text}"


def format_status(server: str, role: str, rows: Sequence[ServiceRow], agent: Fetched) -> str:
    up = sum(1 for row in rows if row.ok)
    down = [row.name for row in rows if not row.ok]
    lines = [
        f"<b>{escape(server)}</b> ({escape(role)})",
        f"services: {up}/{len(rows)} up" + (f", down: {escape(', '.join(down))}" if down else ""),
        agent_line(agent),
    ]
    return "\n".join(lines)


def format_services(server: str, rows: Sequence[ServiceRow]) -> str:
    lines = [f"<b>Services on {escape(server)}</b>"]
    lines += [f"{'✅' if row.ok else '❌'} {escape(row.name)}: {escape(row.describe())}" for row in rows]
    return "\n".join(lines)


def doctor_checks(
    rows: Sequence[ServiceRow], agent: Fetched, firing: Fetched, probes: Sequence[tuple[str, str | None]]
) -> list[Check]:
    """Containers, the agent's health, each probed URL, and Prometheus' firing alerts."""
    checks = [
        Check(f"container {row.name}", "pass" if row.ok else "fail", escape(row.describe())) for row in rows
    ]
    checks.append(Check("agent health", *agent_summary(agent)))
    checks += [
        Check(f"{name} probe", "pass" if error is None else "fail", escape(error or "ok"))
        for name, error in probes
    ]
    if firing.error:
        checks.append(Check("firing alerts", "warn", f"Prometheus: {escape(firing.error)}"))
    else:
        names = sorted({str((a.get("labels") or {}).get("alertname", "?")) for a in firing.document})
        checks.append(
            Check("firing alerts", "warn" if names else "pass", escape(", ".join(names)) if names else "none")
        )
    return checks


def format_doctor(server: str, checks: Sequence[Check]) -> str:
    failed = sum(1 for c in checks if c.level == "fail")
    warned = sum(1 for c in checks if c.level == "warn")
    overall = "FAIL" if failed else "WARN" if warned else "OK"
    lines = [f"<b>Doctor {escape(server)}: {overall}</b>"]
    lines += [f"{MARKS[c.level]} {escape(c.name)}: {c.message}" for c in checks]
    return "\n".join(lines)


def _unavailable(title: str, fetched: Fetched) -> str | None:
    if fetched.error or fetched.document is None:
        return f"<b>{title}</b>\nagent: ❌ {escape(fetched.error or 'no answer')}"
    return None


def _more(rows: Sequence[Any]) -> list[str]:
    return [f"… and {len(rows) - LIST_LIMIT} more"] if len(rows) > LIST_LIMIT else []


def _user_state(user: dict[str, Any]) -> str:
    if not user.get("enabled", True):
        return "disabled"
    if user.get("expired"):
        return "expired"
    if user.get("blocked_by_quota"):
        return "blocked"
    days = user.get("days_until_expiry")
    if isinstance(days, int) and days <= 2:
        return "expiring"
    return "ok"


def format_users(users: Fetched) -> str:
    if (problem := _unavailable("Users", users)) is not None:
        return problem
    doc = users.document
    rows = doc.get("users") or []
    lines = [
        f"<b>Users</b>: {len(rows)}, active {doc.get('effective_enabled_users', 0)}, "
        f"expiring {doc.get('expiring_2d_users', 0)}, expired {doc.get('expired_users', 0)}"
    ]
    for user in rows[:LIST_LIMIT]:
        expiry = user.get("expiry") or "never"
        used = human_bytes(float(user.get("window_30d_usage_bytes") or 0))
        lines.append(
            f"• {escape(str(user.get('email')))}: {_user_state(user)}, until {escape(str(expiry))}, {used}"
        )
    return "\n".join(lines + _more(rows))


def format_traffic(totals: Fetched) -> str:
    if (problem := _unavailable("Traffic", totals)) is not None:
        return problem
    rows = sorted(totals.document, key=lambda r: -int(r.get("total_bytes") or 0))
    total = sum(int(r.get("total_bytes") or 0) for r in rows)
    lines = [f"<b>Traffic</b> (all time): {human_bytes(total)}, {len(rows)} users"]
    for row in rows[:LIST_LIMIT]:
        lines.append(
            f"• {escape(str(row.get('email')))}: {human_bytes(int(row.get('total_bytes') or 0))} "
            f"(↑{human_bytes(int(row.get('uplink_bytes') or 0))} ↓{human_bytes(int(row.get('downlink_bytes') or 0))})"
        )
    return "\n".join(lines + _more(rows))


def format_quota(quota: Fetched) -> str:
    if (problem := _unavailable("Quota", quota)) is not None:
        return problem
    doc = quota.document
    rows = sorted(doc.get("users") or [], key=lambda r: -float(r.get("quota_usage_ratio") or 0))
    over80 = sum(1 for r in rows if float(r.get("quota_usage_ratio") or 0) >= 0.8)
    lines = [
        f"<b>Quota</b> {escape(str(doc.get('window_30d_start')))} … {escape(str(doc.get('window_30d_end')))}",
        f"blocked {doc.get('blocked_users', 0)}, at 80%+ {over80}",
    ]
    for row in rows[:LIST_LIMIT]:
        ratio = float(row.get("quota_usage_ratio") or 0)
        used = human_bytes(int(row.get("window_30d_usage_bytes") or 0))
        limit = human_bytes(int(row.get("quota_bytes") or 0))
        blocked = " ⛔" if row.get("blocked_by_quota") else ""
        lines.append(f"• {escape(str(row.get('email')))}: {used} / {limit} ({ratio:.0%}){blocked}")
    return "\n".join(lines + _more(rows))
