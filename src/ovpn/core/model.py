"""The domain records: servers, backend attachments and users. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from ovpn.core.fields import CliOption, declarations, declare

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
DEFAULT_SSH_USER = "root"
DEFAULT_SSH_PORT = 22
DEFAULT_QUOTA_BYTES = 300 * 1024**3
# The largest quota anything accepts (1 PiB): far beyond any real month, well inside int64 and float precision.
MAX_QUOTA_BYTES = 1024**5
# The smallest positive quota: less blocks a user after the first page load, so it is a slip of the unit.
MIN_QUOTA_BYTES = 1024**2
# Backend priorities only order a proxy's pool (lowest first); the bound keeps them far inside SQLite's int64.
MAX_PRIORITY = 1_000_000


@dataclass(frozen=True, kw_only=True)
class Server:
    """A server record. Each field declares its column and its `server add` / `server set` option (see
    ovpn.core.fields), in the order the options are listed."""

    name: str = field(
        metadata=declare(
            "text",
            CliOption(help="Server name: lower-case letters, digits, '-'.", required=True, settable=False),
        )
    )
    role: Role = field(
        metadata=declare(
            "role",
            CliOption(help="vpn (foreign exit) or proxy (HA entry point).", required=True, settable=False),
        )
    )
    proxy_preset: str | None = field(
        default=None,
        metadata=declare("optional_text", CliOption(help="Proxy preset (proxies only; default ru).")),
    )
    host: str = field(
        metadata=declare(
            "text", CliOption(help="IP address or DNS name that ovpn and HAProxy connect to.", required=True)
        )
    )
    domain: str = field(
        metadata=declare("text", CliOption(help="Public domain in client links (default: --host)."))
    )
    port: int = field(
        default=DEFAULT_PORT,
        metadata=declare(
            "port", CliOption(help="Public VLESS + REALITY port.", default=DEFAULT_PORT, integer=True)
        ),
    )
    ssh_user: str = field(metadata=declare("text", CliOption(default=DEFAULT_SSH_USER)))
    ssh_port: int = field(metadata=declare("port", CliOption(default=DEFAULT_SSH_PORT, integer=True)))
    ssh_identity: str | None = field(
        default=None,
        metadata=declare(
            "optional_text", CliOption(help="SSH private key file (default: your SSH config and agent).")
        ),
    )
    reality_private_key: str = field(
        metadata=declare(
            "text",
            CliOption(
                help="X25519 private key (generated when omitted).",
                set_help="New key pair (changes this server's links).",
            ),
            secret=True,
        ),
    )
    reality_public_key: str = field(
        metadata=declare("text", CliOption(help="Must match the private key (derived when omitted)."))
    )
    reality_short_id: str = field(
        metadata=declare(
            "text",
            CliOption(
                help="Even-length hex, up to 16 characters (generated when omitted).",
                set_help="New short id (changes this server's links).",
            ),
        )
    )
    reality_server_name: str = field(
        metadata=declare(
            "text",
            CliOption(
                help=f"REALITY SNI (default: the vpn servers' shared one, else {DEFAULT_REALITY_SERVER_NAME})."
            ),
        )
    )
    reality_target: str = field(
        metadata=declare("text", CliOption(help="REALITY target host:port (default: SERVER_NAME:443)."))
    )
    xray_version: str = field(
        metadata=declare("text", CliOption(help="Pinned Xray-core release.", default=DEFAULT_XRAY_VERSION))
    )
    images: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=declare(
            "string_map",
            CliOption(
                help="Override an image (repeatable).",
                set_help="Override (SERVICE= removes).",
                flag="--image",
                metavar="SERVICE=IMAGE",
                repeatable=True,
            ),
        ),
    )
    # A PEM certificate on the host whose expiry the agent reports (e.g. a camouflage site's); None: none.
    agent_cert_file: str | None = field(
        default=None,
        metadata=declare(
            "optional_text",
            CliOption(
                help="A PEM certificate on the host whose expiry the agent reports.",
                set_help="A PEM certificate on the host the agent watches ('' removes it).",
            ),
        ),
    )
    # The backends' shared relay identity, provisioned by `server backend attach`.
    relay_uuid: str | None = field(default=None, metadata=declare("optional_text"))
    enabled: bool = field(default=True, metadata=declare("flag"))

    @property
    def is_proxy(self) -> bool:
        return self.role == "proxy"


SERVER_FIELDS = declarations(Server)


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
