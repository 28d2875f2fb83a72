"""HAProxy's view of the proxy's backend pool: its Prometheus metrics, and its log of the servers' state."""

from __future__ import annotations

import re

from ovpn.core.names import POOL_BACKEND
from ovpn.facts.base import Fact, combined_output
from ovpn.facts.compose import compose_argv
from ovpn.remote.base import RemoteResult


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


# HAProxy reports a pool server's state change twice: once on stderr as `[WARNING]  (PID) : TEXT` and once on
# its log (stdout, raw format) as TEXT; `docker compose logs` may add `SERVICE  | ` in front of either.
_LOG_PREFIX = re.compile(r"^(?:\S+\s+\|\s)?(?:\[[A-Z]+\]\s+\(\d+\)\s:\s)?")
_POOL_EVENT = re.compile(rf"[Ss]erver {POOL_BACKEND}/|backend '?{POOL_BACKEND}'? has no server available")


def pool_events(log: str, limit: int = 15) -> list[str]:
    """HAProxy's log -> its last `limit` lines about the pool's servers (DOWN, UP, failed checks, no server
    left), each once and without the level and PID; scrape and traffic lines are left out."""
    events: list[str] = []
    for raw in log.splitlines():
        line = _LOG_PREFIX.sub("", raw.rstrip(), count=1)
        # The log's copy of "backend 'NAME' has no server available!" lacks the quotes.
        if _POOL_EVENT.search(line) and (not events or events[-1].replace("'", "") != line.replace("'", "")):
            events.append(line)
    return events[-limit:]


def down_servers(states: dict[str, str]) -> list[str]:
    """The pool's servers HAProxy has marked DOWN, by name."""
    return sorted(name for name, state in states.items() if state == "DOWN")


# Enough of HAProxy's log to reach back over a health gate (the agent scrapes its metrics every few seconds,
# and every scrape is a log line).
POOL_LOG_TAIL = 2000


def _pool_events(result: RemoteResult) -> list[str]:
    return pool_events(combined_output(result))


def pool_log() -> Fact[list[str]]:
    """The pool's recent state changes, from the HAProxy service's log."""
    argv = compose_argv(["logs", "--no-color", "--tail", str(POOL_LOG_TAIL), "haproxy"])
    return Fact(tuple(argv), _pool_events)
