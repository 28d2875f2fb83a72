"""Container image references: pinned defaults, each overridable per server and per render."""

from __future__ import annotations

from collections.abc import Mapping

from ovpn import __version__

SERVICES = (
    "xray",
    "haproxy",
    "ovpn-agent",
    "ovpn-agent-base",
    "prometheus",
    "alertmanager",
    "grafana",
    "node-exporter",
    "cadvisor",
    "ovpn-telegram-bot",
)

_DEFAULTS = {
    "haproxy": "haproxy:3.2.15-alpine3.23",
    "ovpn-agent": f"ovpn-agent:{__version__}",
    # The agent's image is built on the host from this base and the wheel in the bundle.
    "ovpn-agent-base": "python:3.11-slim",
    "prometheus": "prom/prometheus:v3.11.2",
    "alertmanager": "prom/alertmanager:v0.32.0",
    "grafana": "grafana/grafana:12.4.3",
    "node-exporter": "prom/node-exporter:v1.11.1",
    "cadvisor": "ghcr.io/google/cadvisor:0.56.2",
    # The bot runs from the agent's image (its wheel carries both); see server_bundle.server_images.
    "ovpn-telegram-bot": f"ovpn-agent:{__version__}",
}


def env_var(service: str) -> str:
    """The `.env` variable that carries a service's image, e.g. ovpn-agent -> OVPN_AGENT_IMAGE."""
    return service.upper().replace("-", "_") + "_IMAGE"


def resolve_images(xray_version: str, *overrides: Mapping[str, str]) -> dict[str, str]:
    """Defaults, then each override mapping in turn (later wins)."""
    images = {"xray": f"ghcr.io/xtls/xray-core:{xray_version}", **_DEFAULTS}
    for mapping in overrides:
        images.update(mapping)
    return {service: images[service] for service in SERVICES}
