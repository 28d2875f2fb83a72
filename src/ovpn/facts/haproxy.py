"""HAProxy's view of the proxy's backend pool, from its Prometheus metrics."""

from __future__ import annotations

from ovpn.core.names import POOL_BACKEND


def pool_states(metrics: str) -> dict[str, str]:
    """HAProxy's `/metrics` text -> each pool server's current state (UP, DOWN, MAINT, ...).

    HAProxy exports one `haproxy_server_status` line per server and possible state, with value 1 for the state
    the server is in."""
    states = {}
    for raw in metrics.splitlines():
        line = raw.rstrip()
        if (
            line.startswith("haproxy_server_status{")
            and f'proxy="{POOL_BACKEND}"' in line
            and line.endswith(" 1")
        ):
            server = line.split('server="', 1)[1].split('"', 1)[0]
            states[server] = line.split('state="', 1)[1].split('"', 1)[0]
    return states
