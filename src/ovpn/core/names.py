"""Names that ovpn, the rendered bundle, the services and the hosts must agree on, declared once: the host's
layout, the Compose project, container names, ports and the HAProxy names. Import them; never retype them."""

from __future__ import annotations

# A host's layout: every release is a directory under RELEASES_DIR; RUNTIME_DIR is a symlink to the live one.
RUNTIME_DIR = "/opt/ovpn"
RELEASES_DIR = "/opt/ovpn-releases"
BACKUP_DIR = "/opt/ovpn-backups"
RELEASE_MARKER = ".ovpn-release.json"
MAIN_COMPOSE = "docker-compose.yml"
MONITORING_COMPOSE = "docker-compose.monitoring.yml"
PROJECT = "ovpn"

BOT_SERVICE = "ovpn-telegram-bot"
# The services a deployed host runs by role (monitoring aside); deploy's health gate and doctor wait for these.
RUNTIME_SERVICES: dict[str, tuple[str, ...]] = {
    "vpn": ("xray", "ovpn-agent"),
    "proxy": ("xray", "ovpn-agent", "haproxy"),
}
# Kept across deploys; the bot runs only when it is not empty and `.env` names an owner.
BOT_TOKEN_FILE = "monitoring/secrets/telegram_bot_token"  # noqa: S105 - a path, not a token
# Files the operator sets on the host that a deploy keeps when the bundle ships them empty.
KEPT_ON_HOST = (BOT_TOKEN_FILE,)
OWNER_ENV_VARIABLE = "OVPN_TELEGRAM_OWNER_USER_ID"

NETWORK = "ovpn-net"

XRAY_CONTAINER = "ovpn-xray"
AGENT_CONTAINER = "ovpn-agent"
HAPROXY_CONTAINER = "ovpn-haproxy"

# The official Xray image runs as distroless "nonroot"; its config is root-owned, group-readable by this gid.
XRAY_GID = 65532

# Ports inside the Compose network.
XRAY_API_PORT = 10085
AGENT_PORT = 9090
RELAY_PORT = 15443
HAPROXY_METRICS_PORT = 8404
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
NODE_EXPORTER_PORT = 9100
CADVISOR_PORT = 8080
BOT_PORT = 8080

# Loopback ports on the host.
AGENT_HOST_PORT = 19000
BOT_HOST_PORT = 19001

POOL_FRONTEND = "foreign_in"
POOL_BACKEND = "foreign_backends"

# Read from inside the agent's container (deploy's health gate, doctor).
AGENT_HEALTH_URL = f"http://127.0.0.1:{AGENT_PORT}/health"
HAPROXY_METRICS_URL = f"http://haproxy:{HAPROXY_METRICS_PORT}/metrics"
