"""The domain records: servers, backend attachments and users. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Role = Literal["vpn", "proxy"]
ROLES: tuple[Role, ...] = ("vpn", "proxy")

RELAY_EMAIL = "proxy-service@cluster"
# The runtime-only user the agent adds to tell one Xray process from the next (ovpn.agent.collector).
AGENT_MARKER_EMAIL = "ovpn-agent-marker@local"
# Emails that belong to ovpn itself and never to a user (compared without case, as Xray compares emails).
RESERVED_EMAILS = (RELAY_EMAIL, AGENT_MARKER_EMAIL)
CLIENT_INBOUND_TAG = "vless-reality"
DEFAULT_XRAY_VERSION = "26.7.28"
DEFAULT_REALITY_SERVER_NAME = "www.microsoft.com"
DEFAULT_PORT = 443
DEFAULT_QUOTA_BYTES = 300 * 1024**3
# The largest quota anything accepts (1 PiB): far beyond any real month, well inside int64 and float precision.
MAX_QUOTA_BYTES = 1024**5
# The smallest positive quota: less blocks a user after the first page load, so it is a slip of the unit.
MIN_QUOTA_BYTES = 1024**2
# Backend priorities only order a proxy's pool (lowest first); the bound keeps them far inside SQLite's int64.
MAX_PRIORITY = 1_000_000


@dataclass(frozen=True)
class Server:
    name: str
    role: Role
    host: str
    domain: str
    ssh_user: str
    ssh_port: int
    xray_version: str
    reality_private_key: str
    reality_public_key: str
    reality_short_id: str
    reality_server_name: str
    reality_target: str
    port: int = DEFAULT_PORT
    ssh_identity: str | None = None
    proxy_preset: str | None = None
    relay_uuid: str | None = None
    images: tuple[tuple[str, str], ...] = ()
    enabled: bool = True
    # A PEM certificate on the host whose expiry the agent reports (e.g. a camouflage site's); None: none.
    agent_cert_file: str | None = None

    @property
    def is_proxy(self) -> bool:
        return self.role == "proxy"


@dataclass(frozen=True)
class TelegramSettings:
    """Whom a server's Telegram bot obeys (one owner) and notifies; `api_base_url` empty means Telegram's own."""

    owner_user_id: int
    notify_chat_ids: tuple[int, ...] = ()
    api_base_url: str = ""


@dataclass(frozen=True)
class Attachment:
    proxy: str
    backend: str
    priority: int = 100


@dataclass(frozen=True)
class PoolMember:
    """A backend as its proxy sees it: the server record and its attachment priority."""

    server: Server
    priority: int


@dataclass(frozen=True)
class User:
    username: str
    uuid: str
    email: str
    enabled: bool = True
    expiry: date | None = None
    quota_bytes: int | None = None
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def expires_at(self) -> datetime | None:
        """Expiry date D means active through 23:59:59 UTC of D: the cutoff is the next midnight."""
        if self.expiry is None:
            return None
        return datetime.combine(self.expiry + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    def is_expired(self, now: datetime) -> bool:
        cutoff = self.expires_at()
        return cutoff is not None and now >= cutoff

    def is_active(self, now: datetime) -> bool:
        return self.enabled and not self.is_expired(now)

    def effective_quota_bytes(self) -> int:
        return self.quota_bytes if self.quota_bytes else DEFAULT_QUOTA_BYTES


def default_email(username: str) -> str:
    return f"{username}@global"
