"""Names and ports that several rendered files must agree on (Compose, Xray, HAProxy, monitoring)."""

from __future__ import annotations

from typing import Any

NETWORK = "ovpn-net"

XRAY_CONTAINER = "ovpn-xray"
AGENT_CONTAINER = "ovpn-agent"
HAPROXY_CONTAINER = "ovpn-haproxy"

# The official Xray image runs as distroless "nonroot"; its config is root-owned, group-readable by this gid.
XRAY_GID = 65532

XRAY_API_PORT = 10085
AGENT_PORT = 9090
AGENT_HOST_PORT = 19000
RELAY_PORT = 15443
HAPROXY_METRICS_PORT = 8404

POOL_FRONTEND = "foreign_in"
POOL_BACKEND = "foreign_backends"


def json_file_logging() -> dict[str, Any]:
    """A fresh dict per service (so the YAML has no anchors): bounded json-file logs."""
    return {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}
