"""What the screens read over HTTP: the agent's API, Prometheus' firing alerts and the services' health URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Fetched:
    """A JSON document, or why there is none."""

    document: Any = None
    error: str | None = None


def _error(e: httpx.HTTPError) -> str:
    return "timeout" if isinstance(e, httpx.TimeoutException) else "unreachable"


class Probes:
    def __init__(self, agent_url: str, prometheus_url: str) -> None:
        self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        self.agent_url = agent_url
        self.prometheus_url = prometheus_url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(self, url: str) -> Fetched:
        if not url:
            return Fetched(error="not configured")
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as e:
            return Fetched(error=_error(e))
        try:
            document = response.json()
        except ValueError:
            return Fetched(error=f"HTTP {response.status_code}, not JSON")
        if response.status_code != 200:
            return Fetched(document, error=str(document.get("error") if isinstance(document, dict) else None)
                           or f"HTTP {response.status_code}")  # fmt: skip
        return Fetched(document)

    async def agent(self, path: str) -> Fetched:
        return await self.get_json(f"{self.agent_url}{path}" if self.agent_url else "")

    async def firing_alerts(self) -> Fetched:
        """Prometheus' alerts in state `firing` (a list of {labels, annotations, state})."""
        fetched = await self.get_json(f"{self.prometheus_url}/api/v1/alerts" if self.prometheus_url else "")
        if fetched.error:
            return fetched
        alerts = (fetched.document.get("data") or {}).get("alerts") or []
        return Fetched([a for a in alerts if a.get("state") == "firing"])

    async def http_ok(self, url: str) -> str | None:
        """None when `url` answers 2xx, else what went wrong."""
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as e:
            return _error(e)
        return None if response.is_success else f"HTTP {response.status_code}"
