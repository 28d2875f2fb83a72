"""Xray server config for both roles.

Legacy key names (`clients`, `network: tcp`, `dest`, `publicKey`, `vnext`) are emitted on purpose: every Xray
release from 1.8 to 26.x parses them without a warning.

No server sniffs its client inbound, so routing decides by the destination the client asked for, never by a
name the client put in its TLS SNI or HTTP Host. With sniffing, even in the `routeOnly` form, Xray's routing
context gives `domain` rules the sniffed name while the connection still goes to the client's destination: a
client that names `www.gosuslugi.ru` in its SNI would then be sent *directly* to any address or foreign name it
chose, and foreign traffic would leave the proxy. Putting the `ip` rules (and a catch-all for every address)
before the `domain` rules closes that for IP destinations only: a sniffed name still outranks a domain
destination (`GetTargetDomain` prefers it), so a client asking for `www.foreign.example` with that SNI would
still go out directly. Without sniffing, an IP destination meets only the `ip` rules (a tun-mode client reaches
a Russian address directly through `geoip:ru`, any other address through the relay) and a domain destination
only the `domain` rules, with the name the proxy itself resolves and connects to. docs/ha-proxy.md has the
whole argument and the lab test that proves both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ovpn.core.links import FLOW, reality_client_settings, vless_outbound
from ovpn.core.model import CLIENT_INBOUND_TAG, RELAY_EMAIL, Server, User
from ovpn.core.names import (
    AGENT_HOST_PORT,
    AGENT_PORT,
    ALERTMANAGER_PORT,
    BOT_HOST_PORT,
    BOT_PORT,
    CADVISOR_PORT,
    GRAFANA_PORT,
    HAPROXY_METRICS_PORT,
    NODE_EXPORTER_PORT,
    PROMETHEUS_PORT,
    RELAY_PORT,
    XRAY_API_PORT,
)
from ovpn.core.presets import Preset

RELAY_HOST = "haproxy"
CONN_IDLE_SECONDS = 300

# Ports of the host's own services on the compose network and on its loopback; a client must never reach them
# through the VPN.
INTERNAL_PORTS = ",".join(str(port) for port in sorted({
    GRAFANA_PORT, CADVISOR_PORT, BOT_PORT, HAPROXY_METRICS_PORT, PROMETHEUS_PORT, AGENT_PORT, ALERTMANAGER_PORT,
    NODE_EXPORTER_PORT, XRAY_API_PORT, RELAY_PORT, AGENT_HOST_PORT, BOT_HOST_PORT,
}))  # fmt: skip
# The host itself on any port: `0.0.0.0` and `::` also mean this host to a Linux connect().
THIS_HOST = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "::/128", "::1/128", "fe80::/10")
PRIVATE_NETWORKS = (
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)


def _rule(outbound: str, tag: str, **fields: Any) -> dict[str, Any]:
    return {"type": "field", **fields, "outboundTag": outbound, "ruleTag": tag}


def guard_rules() -> list[dict[str, Any]]:
    """Rules that keep clients away from the host itself: Xray's API, the agent, HAProxy, monitoring."""
    return [
        _rule("block", "guard-local-names", domain=["dotless:", "domain:localhost"]),
        _rule("block", "guard-loopback", ip=list(THIS_HOST)),
        _rule("block", "guard-internal-ports", ip=list(PRIVATE_NETWORKS), port=INTERNAL_PORTS),
    ]


def resolver() -> dict[str, Any]:
    """Xray's own resolver, the one `direct` dials names with: it drops answers that point at the host itself.

    Routing runs before any name is resolved (`AsIs`), so `guard-loopback` never sees where a name leads;
    without this, a name whose DNS record says 127.0.0.1 would reach Xray's API from the direct outbound.
    `direct` resolves with `ForceIPv4`, so a name left with no address fails instead of being handed to the
    system resolver. Only names the server connects to directly are ever resolved here.
    """
    return {"servers": [{"address": "localhost", "unexpectedIPs": list(THIS_HOST)}]}


def preset_rules(preset: Preset) -> list[dict[str, Any]]:
    rules = []
    for index, rule in enumerate(preset.rules, start=1):
        rules.append(_rule("direct", f"preset-{preset.name}-{index}", **{rule.kind: list(rule.matchers)}))
    return rules


def _client(user_id: str, email: str) -> dict[str, Any]:
    return {"id": user_id, "email": email, "flow": FLOW, "level": 0}


def _inbound(server: Server, clients: list[dict[str, Any]], short_ids: list[str]) -> dict[str, Any]:
    return {
        "tag": CLIENT_INBOUND_TAG,
        "listen": "0.0.0.0",  # noqa: S104 - the public inbound, inside the container
        "port": server.port,
        "protocol": "vless",
        "settings": {"clients": clients, "decryption": "none"},
        "streamSettings": {
            "network": "tcp",
            "security": "reality",
            "realitySettings": {
                "show": False,
                "dest": server.reality_target,
                "xver": 0,
                "serverNames": [server.reality_server_name],
                "privateKey": server.reality_private_key,
                "shortIds": short_ids,
            },
        },
        "sniffing": {"enabled": False},  # see the module docstring: routing never trusts a sniffed name
    }


def foreign_pool_outbound(relay: Server | None) -> dict[str, Any]:
    """The relay to the local HAProxy; with no backend attached it is a blackhole, so nothing leaks out."""
    if relay is None or relay.relay_uuid is None:
        return {"tag": "foreign-pool", "protocol": "blackhole", "settings": {}}
    reality = reality_client_settings(
        relay.reality_server_name, relay.reality_public_key, relay.reality_short_id
    )
    return vless_outbound("foreign-pool", RELAY_HOST, RELAY_PORT, relay.relay_uuid, reality)


def render_xray_config(
    server: Server,
    users: Sequence[User],
    *,
    relay_uuid: str | None,
    preset: Preset | None,
    pool_representative: Server | None,
) -> dict[str, Any]:
    """The server's config.json as a dict.

    `users` are the users to admit (already filtered for enabled/expired). `relay_uuid` is set on a vpn
    server attached to at least one proxy. On a proxy, `preset` gives the direct rules and
    `pool_representative` (any backend of the parity-checked pool, or None) gives the relay parameters.
    """
    clients = [_client(u.uuid, u.email) for u in users]
    if relay_uuid is not None:
        clients.append(_client(relay_uuid, RELAY_EMAIL))
    clients.sort(key=lambda c: str(c["email"]))

    direct = {"tag": "direct", "protocol": "freedom", "settings": {"domainStrategy": "ForceIPv4"}}
    block = {"tag": "block", "protocol": "blackhole", "settings": {}}
    rules = guard_rules()
    if server.is_proxy:
        assert preset is not None, "a proxy is rendered with its preset"
        outbounds = [foreign_pool_outbound(pool_representative), direct, block]
        rules += preset_rules(preset)
        rules.append(_rule("foreign-pool", "foreign-catch-all", inboundTag=[CLIENT_INBOUND_TAG]))
    else:
        outbounds = [direct, block]

    return {
        "log": {"loglevel": "warning"},
        "api": {
            "tag": "api",
            "listen": f"0.0.0.0:{XRAY_API_PORT}",
            "services": ["HandlerService", "StatsService"],
        },
        "stats": {},
        "policy": {
            "levels": {
                "0": {"statsUserUplink": True, "statsUserDownlink": True, "connIdle": CONN_IDLE_SECONDS}
            },
            "system": {
                "statsInboundUplink": True,
                "statsInboundDownlink": True,
                "statsOutboundUplink": True,
                "statsOutboundDownlink": True,
            },
        },
        "dns": resolver(),
        "inbounds": [_inbound(server, clients, [server.reality_short_id])],
        "outbounds": outbounds,
        "routing": {"domainStrategy": "AsIs", "rules": rules},
    }
