"""Reads made from inside the agent's container: it has Python and sits on the Compose network, so it can reach
its own API and HAProxy's metrics, which are not published on the host."""

from __future__ import annotations

import json

from ovpn.core.names import AGENT_CONTAINER
from ovpn.facts.base import Fact
from ovpn.remote.base import RemoteResult


def _body(result: RemoteResult) -> str | None:
    return result.text if result.ok else None


def fetch_in_agent(url: str) -> Fact[str | None]:
    """The body at `url` as the agent's container sees it; None when it does not answer."""
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=4).read().decode())"
    return Fact(("docker", "exec", AGENT_CONTAINER, "python3", "-c", code), _body, timeout=30)


def agent_status(health_document: str | None) -> str | None:
    """The agent's /health answer -> its `status` ("ok" when Xray's API answers); None when it did not answer."""
    if not health_document:
        return None
    try:
        doc = json.loads(health_document)
    except ValueError:
        return None
    status = doc.get("status") if isinstance(doc, dict) else None
    return str(status) if status is not None else None
