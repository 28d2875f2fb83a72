"""HAProxy TCP failover for a proxy's backend pool (valid on HAProxy 2.6 and 3.x).

Failover choices: a refused or timed-out connect is retried on another server at once (`retries` with
`option redispatch 1`), so a dead backend costs new connections only latency; health checks mark it down within
about two seconds and `on-marked-down shutdown-sessions` moves long-lived tunnels off it. The tunnel timeout is
far above Xray's idle timeout so HAProxy never cuts an idle tunnel first. Backends with the lowest priority
number are active; the rest are backups, used in priority order only when every active one is down.
"""

from __future__ import annotations

from collections.abc import Sequence

from ovpn.core.model import PoolMember
from ovpn.render.names import HAPROXY_METRICS_PORT, POOL_BACKEND, POOL_FRONTEND, RELAY_PORT
from ovpn.render.xray import CONN_IDLE_SECONDS


def _server_lines(pool: Sequence[PoolMember]) -> list[str]:
    ordered = sorted(pool, key=lambda m: (m.priority, m.server.name))
    if not ordered:
        return ["    # no backend attached yet: every relay connection is refused (fail closed)"]
    best = ordered[0].priority
    lines = []
    for member in ordered:
        backup = "" if member.priority == best else " backup"
        host = member.server.host
        address = f"[{host}]" if ":" in host else host
        lines.append(f"    server {member.server.name} {address}:{member.server.port} check{backup}")
    return lines


def render_haproxy_config(pool: Sequence[PoolMember]) -> str:
    client_timeout = f"{CONN_IDLE_SECONDS + 30}s"
    lines = [
        "# Rendered by ovpn; changes are overwritten by the next deploy.",
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 20000",
        "",
        "resolvers system",
        "    parse-resolv-conf",
        "    hold valid 30s",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    timeout connect 2s",
        f"    timeout client {client_timeout}",
        f"    timeout server {client_timeout}",
        "    timeout tunnel 1h",
        "    timeout client-fin 30s",
        "    timeout server-fin 30s",
        "    timeout check 2s",
        "    retries 3",
        "    option redispatch 1",
        "",
        f"frontend {POOL_FRONTEND}",
        f"    bind :{RELAY_PORT}",
        "    option tcplog",
        "    option dontlognull",
        f"    default_backend {POOL_BACKEND}",
        "",
        f"backend {POOL_BACKEND}",
        "    balance leastconn",
        "    option tcp-check",
        "    tcp-check connect",
        "    default-server inter 2s fastinter 500ms downinter 5s fall 2 rise 2"
        " on-marked-down shutdown-sessions init-addr libc,none resolvers system",
        *_server_lines(pool),
        "",
        "frontend metrics",
        "    mode http",
        f"    bind :{HAPROXY_METRICS_PORT}",
        "    timeout client 30s",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    http-request return status 404 content-type text/plain string not-found",
        "",
    ]
    return "\n".join(lines)
