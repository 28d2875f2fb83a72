"""Prometheus' own view (targets and alerts), read through its HTTP API from inside its container."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ovpn.core.names import PROMETHEUS_PORT
from ovpn.errors import OvpnError
from ovpn.facts.base import Fact
from ovpn.facts.compose import compose_argv
from ovpn.remote.base import RemoteResult


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    health: Literal["up", "down", "unknown"]  # unknown: not scraped yet
    error: str


@dataclass
class PrometheusView:
    targets: list[Target]
    firing: list[str]  # alert names
    pending: list[str]

    def count(self, health: str) -> int:
        return sum(1 for t in self.targets if t.health == health)


def parse_targets(document: str) -> list[Target]:
    """Prometheus' `/api/v1/targets` answer -> its active targets."""
    data = _api_data(document, "targets")
    if not isinstance(data, dict):
        raise OvpnError(
            "Prometheus answered /api/v1/targets without data",
            "see `ovpn server logs S --service prometheus`",
        )
    targets = []
    for item in data.get("activeTargets", []):
        labels = item.get("labels", {})
        health = item.get("health")
        targets.append(
            Target(
                job=str(labels.get("job", "")),
                instance=str(labels.get("instance", item.get("scrapeUrl", ""))),
                health="up" if health == "up" else "down" if health == "down" else "unknown",
                error=str(item.get("lastError", "")),
            )
        )
    return sorted(targets, key=lambda t: (t.job, t.instance))


def parse_alerts(document: str) -> tuple[list[str], list[str]]:
    """Prometheus' `/api/v1/alerts` answer -> (firing alert names, pending alert names), sorted."""
    data = _api_data(document, "alerts")
    alerts = data.get("alerts", []) if isinstance(data, dict) else []
    firing = sorted(
        {str(a.get("labels", {}).get("alertname", "")) for a in alerts if a.get("state") == "firing"}
    )
    pending = sorted(
        {str(a.get("labels", {}).get("alertname", "")) for a in alerts if a.get("state") == "pending"}
    )
    return firing, pending


def _api_data(document: str, what: str) -> object:
    try:
        doc = json.loads(document)
    except ValueError:
        raise OvpnError(
            f"Prometheus' /api/v1/{what} answer is not JSON", "see `ovpn server logs S --service prometheus`"
        ) from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise OvpnError(f"Prometheus' /api/v1/{what} failed: {str(doc)[:200]}", "see its logs")
    return doc.get("data")


def prometheus_api(path: str) -> Fact[str]:
    """The answer of Prometheus' API at `path` (busybox or GNU `wget`: both images have one)."""
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}{path}"
    argv = compose_argv(
        ["exec", "-T", "prometheus", "wget", "-q", "-O", "-", "-T", "10", url], monitoring=True
    )

    def answer(result: RemoteResult) -> str:
        if not result.ok:
            raise OvpnError(
                f"Prometheus did not answer {path}: {result.error_text.strip()[-200:]}", "see its logs"
            )
        return result.text

    return Fact(tuple(argv), answer)
