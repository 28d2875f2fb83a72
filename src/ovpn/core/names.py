"""Names that ovpn, the rendered bundle and the hosts must agree on, declared once: the host's layout, the
Compose project, and where the agent answers."""

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
