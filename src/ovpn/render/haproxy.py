"""HAProxy TCP failover for a proxy's backend pool (valid on HAProxy 2.6 and 3.x).

Backends with the lowest priority number are active (`balance leastconn`, which suits long-lived tunnels); the
rest are backups, used in priority order only when every active one is down. The failover settings, what each
buys and what it costs (figures from the namespace lab, `bench/lab_failover.py`, docs/ha-proxy.md):

* `retries 3` + `option redispatch 1`: a refused or timed-out connect is retried, on another server when one
  is usable. Costs nothing while backends are healthy. A backup is usable only once the active server is
  marked down, so the retries alone do not move traffic to it; the two settings below do that quickly. Cost:
  a retry that would go to the same server first waits `min(timeout connect, 1 s)`, so after a process death
  the first connection or two take about 1 s. The proxy's Xray also retries a failed relay dial by itself
  (without these settings the lab measured at most 0.2 s), but failover should not rest on that.
* `observe layer4 error-limit 1 on-error sudden-death`: the first failed connect of real traffic leaves the
  server one failed check from DOWN and switches its checks to `fastinter`. A dead backend is thus DOWN about
  one `fastinter` after the first user hits it, instead of after `fall` regular checks (a dead process:
  recovery in under 0.1 s instead of 1.6 s, lab medians). A healthy backend with one transient error just
  passes its next check, so nothing is marked down on a single error (`on-error mark-down` would, and would
  then kill all its tunnels through `shutdown-sessions`). Cost: one extra check after such an error.
* `timeout connect 1s` (was 2 s): how long a connect to a silent backend hangs before it is retried, and
  (through `min(timeout connect, inter)`) how long a health check waits. New connections recover from a
  blackholed backend in about 1 s instead of 5.7 s (lab medians). Cost: a connect whose SYN or SYN-ACK is lost
  once (the kernel resends after 1 s) is abandoned and retried instead of waited for, which takes as long; a
  backend more than about a second's round trip away could not be used at all.
* `inter 1s fastinter 200ms downinter 2s fall 2 rise 2`: a silent backend without traffic is DOWN within about
  3 s, a returning one UP within about 2 s. Cost: one TCP connect per second per backend from every proxy (an
  accepted and at once closed connection on the backend's public port; Xray does not contact its REALITY
  target for it), and one every 2 s to a backend that is down.
* `on-marked-down shutdown-sessions`: tunnels on a backend marked DOWN are closed, so clients reconnect and
  land on a live one. Cost: those connections break once (they were dead or dying anyway).
* `timeout tunnel 1h`, far above Xray's idle timeout, so HAProxy never cuts an idle tunnel first.
"""

from __future__ import annotations

from collections.abc import Sequence

from ovpn.core.model import PoolMember
from ovpn.core.names import HAPROXY_METRICS_PORT, POOL_BACKEND, POOL_FRONTEND, RELAY_PORT
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
        "",
        "resolvers system",
        "    parse-resolv-conf",
        "    hold valid 30s",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    timeout connect 1s",
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
        "    default-server inter 1s fastinter 200ms downinter 2s fall 2 rise 2"
        " observe layer4 error-limit 1 on-error sudden-death"
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
