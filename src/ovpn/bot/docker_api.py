"""The Docker Engine API over its unix socket: container state and health, and restarts that wait for health."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 10


class DockerError(Exception):
    """The engine could not be asked, or refused."""


@dataclass(frozen=True)
class ContainerState:
    status: str  # running, exited, restarting, ... or "missing"
    health: str | None  # healthy, unhealthy, starting; None without a healthcheck

    @property
    def ok(self) -> bool:
        return self.status == "running" and self.health in (None, "healthy")

    def describe(self) -> str:
        return f"{self.status}, {self.health}" if self.health else self.status


MISSING = ContainerState("missing", None)


class Docker:
    def __init__(self, socket: Path, timeout: float = 5.0) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)), base_url="http://docker", timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, timeout: float | None = None) -> httpx.Response:
        try:
            if timeout is None:
                return await self._client.request(method, path)
            return await self._client.request(method, path, timeout=timeout)
        except httpx.HTTPError as e:
            raise DockerError(f"Docker engine unreachable: {type(e).__name__}") from None

    async def state(self, container: str) -> ContainerState:
        response = await self._request("GET", f"/containers/{quote(container, safe='')}/json")
        if response.status_code == 404:
            return MISSING
        if response.status_code != 200:
            raise DockerError(f"Docker engine answered HTTP {response.status_code}")
        state = response.json().get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        return ContainerState(str(state.get("Status", "unknown")), health if health else None)

    async def restart(self, container: str) -> None:
        response = await self._request(
            "POST",
            f"/containers/{quote(container, safe='')}/restart?t={STOP_GRACE_SECONDS}",
            timeout=STOP_GRACE_SECONDS + 30,
        )
        if response.status_code == 404:
            raise DockerError(f"no container named {container}")
        if response.status_code != 204:
            raise DockerError(f"restart refused: HTTP {response.status_code}")

    async def restart_and_wait(self, container: str, timeout: float) -> ContainerState:
        """Restart, then wait until the container is healthy (running, without a healthcheck) or `timeout`
        passes; returns the last state seen."""
        await self.restart(container)
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state(container)
            if state.ok or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(POLL_SECONDS)
