"""What the monitoring renderer needs to know about a host, and the names every monitoring file shares.

The container, job and port names here are the contract between the Compose file, the Prometheus scrape
jobs, the alert rules (cAdvisor's `name` label is the container name) and the dashboards. The main Compose
file names its containers `ovpn-xray`, `ovpn-agent` and, on proxies, `ovpn-haproxy`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ovpn.core import validation
from ovpn.core.model import ROLES, Role
from ovpn.core.names import (
    BOT_HOST_PORT,
    BOT_PORT,
    GRAFANA_PORT,
)
from ovpn.errors import OvpnError
from ovpn.render.images import env_var

# Monitoring service -> the variable in `.env` that may override its image.
IMAGE_VARIABLES: Mapping[str, str] = {
    service: env_var(service)
    for service in ("prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "ovpn-telegram-bot")
}
MONITORING_SERVICES = tuple(IMAGE_VARIABLES)

# Container names (cAdvisor reports them as the `name` label).
MONITORING_CONTAINERS: Mapping[str, str] = {
    "prometheus": "ovpn-prometheus",
    "alertmanager": "ovpn-alertmanager",
    "grafana": "ovpn-grafana",
    "node-exporter": "ovpn-node-exporter",
    "cadvisor": "ovpn-cadvisor",
    "ovpn-telegram-bot": "ovpn-telegram-bot",
}

# Loopback bindings on the host.
GRAFANA_HOST_BINDING = f"127.0.0.1:{GRAFANA_PORT}"
BOT_HOST_BINDING = f"127.0.0.1:{BOT_HOST_PORT}"


# Scrape job names.
JOB_PROMETHEUS = "prometheus"
JOB_ALERTMANAGER = "alertmanager"
JOB_NODE_EXPORTER = "node-exporter"
JOB_CADVISOR = "cadvisor"
JOB_AGENT = "ovpn-agent"
JOB_BOT = "ovpn-telegram-bot"
JOB_HAPROXY = "haproxy"

BOT_WEBHOOK_URL = f"http://ovpn-telegram-bot:{BOT_PORT}/alertmanager"
# The bot's /alertmanager and /events take only requests with this server's webhook token (Bearer). Paths, not
# the token: the file in the bundle, and where the bot and Alertmanager see it. Alertmanager's image runs as
# `nobody`, so the file is root-owned, readable by one group that only Alertmanager's container joins.
WEBHOOK_TOKEN_FILE = "monitoring/secrets/bot_webhook_token"  # noqa: S105
WEBHOOK_TOKEN_BOT_MOUNT = "/run/secrets/bot_webhook_token"  # noqa: S105
WEBHOOK_TOKEN_ALERTMANAGER_MOUNT = "/etc/alertmanager/secrets/bot_webhook_token"  # noqa: S105
WEBHOOK_TOKEN_GID = 65533
_WEBHOOK_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
DATASOURCE_UID = "prometheus"


@dataclass(frozen=True)
class MonitoringSpec:
    server_name: str
    role: Role
    images: Mapping[str, str]
    # Whether the server's Telegram bot is set up (`server monitor telegram-setup`): without it the bot never
    # runs, so it is neither scraped nor alerted on.
    bot_enabled: bool = True
    # The bot's webhook token (ovpn.ops.bot_webhook), rendered into WEBHOOK_TOKEN_FILE; empty while no bot is set
    # up (the bot does not run then, and would refuse to start with an empty file).
    webhook_token: str = field(default="", repr=False)

    @property
    def is_proxy(self) -> bool:
        return self.role == "proxy"


def check_spec(spec: MonitoringSpec) -> None:
    """Refuse a spec that would render broken or unsafe files."""
    validation.server_name(spec.server_name)
    if spec.role not in ROLES:
        raise OvpnError(f"unknown server role {spec.role!r}", "the role is 'vpn' or 'proxy'")
    missing = [service for service in MONITORING_SERVICES if service not in spec.images]
    if missing:
        raise OvpnError(
            f"no image given for monitoring service(s): {', '.join(missing)}",
            "resolve the images with ovpn.render.images.resolve_images before rendering",
        )
    for service in MONITORING_SERVICES:
        validation.image_reference(spec.images[service])
    if spec.webhook_token and not _WEBHOOK_TOKEN.fullmatch(spec.webhook_token):
        raise OvpnError(
            f"the Telegram bot's webhook token of {spec.server_name} is malformed",
            f"run `ovpn server monitor telegram-setup {spec.server_name}` to generate a new one",
        )
