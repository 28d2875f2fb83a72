"""`ovpn deploy --all`: every server in parallel, vpn servers in a wave before the proxies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ovpn.core.model import Server
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.deploy import DeployOptions, DeployOutcome, Progress, deploy

DeployResult = DeployOutcome | OvpnError


@dataclass(frozen=True)
class FleetDeploy:
    """Each server's outcome or error, in fleet order (wave by wave), and how long the whole run took."""

    results: dict[str, DeployResult]
    seconds: float

    @property
    def failed(self) -> dict[str, OvpnError]:
        return {name: r for name, r in self.results.items() if isinstance(r, OvpnError)}


def deploy_waves(servers: Iterable[Server]) -> list[list[str]]:
    """vpn servers first, then proxies: a proxy deploy checks its backends' live relay identity."""
    fleet = list(servers)
    return [[s.name for s in fleet if not s.is_proxy], [s.name for s in fleet if s.is_proxy]]


def run_waves(
    waves: list[list[str]], deploy_one: Callable[[str], DeployOutcome], jobs: int
) -> dict[str, DeployResult]:
    """Deploy each wave on up to `jobs` hosts at once; a wave starts when the one before has finished. A server
    that fails is reported with its error and stops nobody else."""

    def one(name: str) -> DeployResult:
        try:
            return deploy_one(name)
        except OvpnError as e:
            return e

    results: dict[str, DeployResult] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for wave in waves:
            results.update(zip(wave, pool.map(one, wave), strict=True))
    return results


def deploy_all(
    app: App, options: DeployOptions, jobs: int, progress_for: Callable[[str], Progress]
) -> FleetDeploy:
    with app.reading() as repo:
        servers = repo.servers()
    started = time.monotonic()
    results = run_waves(
        deploy_waves(servers), lambda name: deploy(app, name, options, progress_for(name)), jobs
    )
    return FleetDeploy(results, time.monotonic() - started)
