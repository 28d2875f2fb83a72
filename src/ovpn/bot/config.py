"""The bot's configuration: environment variables only (the Compose file sets them), plus the token file."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_POLL_TIMEOUT = 30
DEFAULT_RESTART_TIMEOUT = 45.0
MIN_WEBHOOK_TOKEN_LENGTH = 16
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}\Z")
_CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_PROBES = (
    ("prometheus", "OVPN_TELEGRAM_PROMETHEUS_URL", "/-/healthy"),
    ("alertmanager", "OVPN_TELEGRAM_ALERTMANAGER_URL", "/-/healthy"),
    ("grafana", "OVPN_TELEGRAM_GRAFANA_URL", "/api/health"),
    ("node-exporter", "OVPN_TELEGRAM_NODE_EXPORTER_URL", "/metrics"),
    ("cadvisor", "OVPN_TELEGRAM_CADVISOR_URL", "/healthz"),
    ("haproxy", "OVPN_TELEGRAM_HAPROXY_URL", ""),
)


class ConfigError(Exception):
    """A configuration problem, said in one line."""


class Service(NamedTuple):
    """A service the bot watches: its Compose name and its container's name."""

    name: str
    container: str


@dataclass(frozen=True)
class BotConfig:
    listen: tuple[str, int]
    token_file: Path
    webhook_token_file: Path
    server_name: str
    server_role: str
    agent_url: str
    prometheus_url: str
    probes: tuple[tuple[str, str], ...]
    services: tuple[Service, ...]
    owner_user_id: int
    notify_chat_ids: tuple[int, ...]
    api_base_url: str
    fallback_ips: tuple[str, ...]
    docker_socket: Path
    poll_timeout: int
    restart_timeout: float

    @property
    def recipients(self) -> tuple[int, ...]:
        """Where notifications go: the owner's private chat first, then every notify chat (no repeats)."""
        return tuple(dict.fromkeys((self.owner_user_id, *self.notify_chat_ids)))

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"OVPN_TELEGRAM_LISTEN must be HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)  # noqa: S104 - inside its container; Compose publishes it on loopback


def parse_services(value: str) -> tuple[Service, ...]:
    """`service=container` pairs separated by commas; names are unique."""
    services: list[Service] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, container = (part.strip() for part in item.partition("="))
        if not sep or not _SERVICE.match(name) or not _CONTAINER.match(container):
            raise ConfigError(f"OVPN_TELEGRAM_SERVICES: expected service=container, got {item!r}")
        if any(s.name == name for s in services):
            raise ConfigError(f"OVPN_TELEGRAM_SERVICES names {name!r} twice")
        services.append(Service(name, container))
    return tuple(services)


def _int(value: str, variable: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConfigError(f"{variable} must be a number, got {value!r}") from None


def parse_chat_ids(value: str) -> tuple[int, ...]:
    return tuple(
        dict.fromkeys(
            _int(item, "OVPN_TELEGRAM_NOTIFY_CHAT_IDS") for item in value.split(",") if item.strip()
        )
    )


def parse_owner(value: str) -> int:
    if not value.strip():
        raise ConfigError("OVPN_TELEGRAM_OWNER_USER_ID is not set: the bot answers exactly one owner")
    owner = _int(value, "OVPN_TELEGRAM_OWNER_USER_ID")
    if owner <= 0:
        raise ConfigError("OVPN_TELEGRAM_OWNER_USER_ID must be a user id (a positive number)")
    return owner


def parse_fallback_ips(value: str) -> tuple[str, ...]:
    ips: list[str] = []
    for item in value.split(","):
        if item.strip():
            try:
                ips.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                raise ConfigError(
                    f"OVPN_TELEGRAM_API_FALLBACK_IPS: {item.strip()!r} is not an IP address"
                ) from None
    return tuple(ips)


def _url(value: str, variable: str) -> str:
    value = value.strip().rstrip("/")
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"{variable} must be an http(s) URL, got {value!r}")
    return value


def _positive(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{variable} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{variable} must be positive")
    return value


def parse_config(env: Mapping[str, str]) -> BotConfig:
    role = env.get("OVPN_TELEGRAM_SERVER_ROLE", "vpn").strip() or "vpn"
    if role not in ("vpn", "proxy"):
        raise ConfigError(f"OVPN_TELEGRAM_SERVER_ROLE must be vpn or proxy, got {role!r}")
    token_file = env.get("OVPN_TELEGRAM_TOKEN_FILE", "").strip()
    if not token_file:
        raise ConfigError("OVPN_TELEGRAM_TOKEN_FILE is not set")
    webhook_token_file = env.get("OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE", "").strip()
    if not webhook_token_file:
        raise ConfigError("OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE is not set")
    probes = tuple(
        (name, url + path)
        for name, variable, path in _PROBES
        if (url := _url(env.get(variable, ""), variable))
    )
    return BotConfig(
        listen=parse_listen(env.get("OVPN_TELEGRAM_LISTEN", DEFAULT_LISTEN)),
        token_file=Path(token_file),
        webhook_token_file=Path(webhook_token_file),
        server_name=env.get("OVPN_TELEGRAM_SERVER_NAME", "").strip() or "server",
        server_role=role,
        agent_url=_url(env.get("OVPN_TELEGRAM_AGENT_URL", ""), "OVPN_TELEGRAM_AGENT_URL"),
        prometheus_url=_url(env.get("OVPN_TELEGRAM_PROMETHEUS_URL", ""), "OVPN_TELEGRAM_PROMETHEUS_URL"),
        probes=probes,
        services=parse_services(env.get("OVPN_TELEGRAM_SERVICES", "")),
        owner_user_id=parse_owner(env.get("OVPN_TELEGRAM_OWNER_USER_ID", "")),
        notify_chat_ids=parse_chat_ids(env.get("OVPN_TELEGRAM_NOTIFY_CHAT_IDS", "")),
        api_base_url=_url(env.get("OVPN_TELEGRAM_API_BASE_URL", ""), "OVPN_TELEGRAM_API_BASE_URL"),
        fallback_ips=parse_fallback_ips(env.get("OVPN_TELEGRAM_API_FALLBACK_IPS", "")),
        docker_socket=Path(env.get("OVPN_TELEGRAM_DOCKER_SOCKET", "").strip() or DEFAULT_DOCKER_SOCKET),
        poll_timeout=int(_positive(env, "OVPN_TELEGRAM_POLL_TIMEOUT", DEFAULT_POLL_TIMEOUT)),
        restart_timeout=_positive(env, "OVPN_TELEGRAM_RESTART_TIMEOUT", DEFAULT_RESTART_TIMEOUT),
    )


def _read_secret_file(path: Path, what: str) -> str:
    """The stripped content of a secret file; missing, unreadable or empty is a configuration error (that never
    shows the content)."""
    try:
        value = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e.strerror}") from None
    if not value:
        raise ConfigError(f"the {what} file {path} is empty: run `ovpn server monitor telegram-setup`")
    return value


def read_token(path: Path) -> str:
    """The bot token from its file."""
    token = _read_secret_file(path, "bot token")
    if any(c.isspace() for c in token) or "/" in token:
        raise ConfigError(f"the bot token file {path} does not hold a bot token")
    return token


def read_webhook_token(path: Path) -> str:
    """The secret Alertmanager and ovpn present to /alertmanager and /events (Bearer). Without it the bot serves
    nothing but health and metrics: a missing, empty or short file is a configuration error."""
    secret = _read_secret_file(path, "webhook token")
    if len(secret) < MIN_WEBHOOK_TOKEN_LENGTH or any(c.isspace() for c in secret):
        raise ConfigError(f"the webhook token file {path} does not hold a webhook token")
    return secret
