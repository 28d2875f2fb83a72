"""Calls to a host's ovpn-agent over SSH, and the user policy it enforces.

The agent is reached with `docker exec -i ovpn-agent python3 -c ...`: the request body (user ids) goes on stdin and
the token never leaves the host (the script reads it from the agent's own environment).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from ovpn.core.model import DEFAULT_QUOTA_BYTES, User
from ovpn.core.names import AGENT_CONTAINER, AGENT_PORT
from ovpn.errors import OvpnError
from ovpn.ops.host import Host

# Runs inside the agent container (it has Python, the token in its environment, and the agent on loopback).
AGENT_CALL = f"""
import json, os, sys, urllib.error, urllib.request
method, path = sys.argv[1], sys.argv[2]
body = sys.stdin.buffer.read() or None
request = urllib.request.Request("http://127.0.0.1:{AGENT_PORT}" + path, data=body, method=method)
request.add_header("Authorization", "Bearer " + os.environ.get("OVPN_AGENT_TOKEN", ""))
request.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        status, text = response.status, response.read().decode()
except urllib.error.HTTPError as e:
    status, text = e.code, e.read().decode()
print(json.dumps({{"status": status, "body": text}}))
"""


def user_policy(users: Sequence[User]) -> dict[str, object]:
    return {
        "default_quota_bytes": DEFAULT_QUOTA_BYTES,
        "users": [
            {"email": u.email, "uuid": u.uuid, "username": u.username, "enabled": u.enabled,
             "expiry": u.expiry.isoformat() if u.expiry else None, "quota_bytes": u.quota_bytes}
            for u in users
        ],
    }  # fmt: skip


def agent_path(path: str, **query: str | None) -> str:
    """An agent URL path with its query string encoded (an email may hold `+`, which reads as a space raw)."""
    given = {name: value for name, value in query.items() if value is not None}
    return f"{path}?{urlencode(given)}" if given else path


def agent_request(host: Host, method: str, path: str, body: object | None = None) -> Any:
    """One call to the host's agent; raises OvpnError on any failure, with the agent's own message."""
    payload = b"" if body is None else json.dumps(body).encode()
    result = host.ssh.run(
        ["docker", "exec", "-i", AGENT_CONTAINER, "python3", "-c", AGENT_CALL, method, path],
        sudo=True, input=payload, timeout=120, check=False,
    )  # fmt: skip
    if not result.ok:
        raise OvpnError(
            f"the agent on {host.server.name} could not be reached: {(result.error_text or result.text)[-300:]}",
            f"check it with `ovpn doctor {host.server.name}`",
        )
    try:
        reply = json.loads(result.text.strip().splitlines()[-1])
        status, document = int(reply["status"]), json.loads(reply["body"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise OvpnError(
            f"the agent on {host.server.name} answered {result.text[-200:]!r}", "see `ovpn doctor`"
        ) from None
    error = document.get("error") if isinstance(document, dict) else None
    if status == 401:
        raise OvpnError(f"the agent on {host.server.name} refused the token: {error}",
                        "the agent and .env disagree (version or token skew): redeploy the server")  # fmt: skip
    if status >= 400:
        raise OvpnError(f"the agent on {host.server.name} answered {status}: {error}", "see `ovpn doctor`")
    return document


def sync_policy(host: Host, users: Sequence[User]) -> dict[str, Any]:
    """Hand the agent the whole user policy; it reconciles Xray's runtime users with it."""
    reply: dict[str, Any] = agent_request(host, "POST", "/users/sync", user_policy(users))
    return reply
