"""What a user gets: the `vless://` share link and a complete Xray client config for one server."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ovpn.core.model import Server, User

FINGERPRINT = "chrome"
FLOW = "xtls-rprx-vision"


def link_label(server: Server, user: User) -> str:
    return f"ovpn-{server.name}-{user.username}"


def vless_link(server: Server, user: User) -> str:
    """The share link (format of Xray-core discussion #716 with the usual REALITY parameters).

    It depends only on the server's public entry parameters and the user's identity, so attaching the server
    to a proxy (which adds only a relay client) leaves it byte-identical.
    """
    params = [
        ("type", "tcp"),
        ("encryption", "none"),
        ("security", "reality"),
        ("sni", server.reality_server_name),
        ("fp", FINGERPRINT),
        ("pbk", server.reality_public_key),
        ("sid", server.reality_short_id),
        ("flow", FLOW),
    ]
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    host = f"[{server.domain}]" if ":" in server.domain else server.domain
    return f"vless://{quote(user.uuid, safe='')}@{host}:{server.port}?{query}#{quote(link_label(server, user), safe='')}"


def reality_client_settings(server_name: str, public_key: str, short_id: str) -> dict[str, Any]:
    return {
        "serverName": server_name,
        "fingerprint": FINGERPRINT,
        "publicKey": public_key,
        "shortId": short_id,
        "spiderX": "/",
    }


def vless_outbound(
    tag: str, address: str, port: int, user_id: str, reality: dict[str, Any]
) -> dict[str, Any]:
    """A VLESS + REALITY + Vision outbound in the legacy `vnext` form that every Xray version parses."""
    return {
        "tag": tag,
        "protocol": "vless",
        "settings": {
            "vnext": [
                {
                    "address": address,
                    "port": port,
                    "users": [{"id": user_id, "encryption": "none", "flow": FLOW, "level": 0}],
                }
            ]
        },
        "streamSettings": {"network": "tcp", "security": "reality", "realitySettings": reality},
    }


def client_config(server: Server, user: User, socks_port: int = 10808) -> dict[str, Any]:
    """A complete client config: SOCKS on 127.0.0.1 and the VLESS outbound to `server`."""
    return {
        "log": {"loglevel": "warning"},
        "inbounds": [
            {
                "tag": "socks-in",
                "listen": "127.0.0.1",
                "port": socks_port,
                "protocol": "socks",
                "settings": {"auth": "noauth", "udp": True},
                "sniffing": {"enabled": True, "destOverride": ["http", "tls", "quic"], "routeOnly": True},
            }
        ],
        "outbounds": [
            vless_outbound(
                "proxy",
                server.domain,
                server.port,
                user.uuid,
                reality_client_settings(
                    server.reality_server_name, server.reality_public_key, server.reality_short_id
                ),
            )
        ],
    }
