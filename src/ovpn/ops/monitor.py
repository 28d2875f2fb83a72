"""`ovpn server monitor up|down|status`: the optional monitoring stack next to a host's live release.

The stack is `docker-compose.monitoring.yml` layered over the main file (one Compose project). The Telegram bot
runs only when its token file is not empty; every `up` that includes the monitoring file scales it to 0
otherwise (see `Host.monitoring_up_args`, which deploy, rollback and restore use too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ovpn.core.names import BOT_SERVICE
from ovpn.errors import OvpnError
from ovpn.facts.base import gather
from ovpn.facts.compose import Container, containers_of
from ovpn.facts.docker import crash_loops
from ovpn.facts.prometheus import PrometheusView, parse_alerts, parse_targets, prometheus_api
from ovpn.ops.app import App
from ovpn.ops.deploy import Progress
from ovpn.ops.host import Host, connect, locked
from ovpn.ops.waiting import Waiting
from ovpn.render.monitoring.compose import ALERTMANAGER_VOLUME, GRAFANA_VOLUME, PROMETHEUS_VOLUME
from ovpn.render.monitoring.spec import MONITORING_SERVICES

UP_TIMEOUT_SECONDS = 180
POLL_SECONDS = 2
VOLUMES = (PROMETHEUS_VOLUME, ALERTMANAGER_VOLUME, GRAFANA_VOLUME)
BOT_NOT_CONFIGURED = f"{BOT_SERVICE}: not configured (run server monitor telegram-setup)"
_FAILED_STATES = ("exited", "dead", "restarting")


@dataclass(frozen=True)
class ServiceState:
    service: str
    container: str
    state: str
    health: str
    status: str
    expected: bool  # the bot is not expected while it has no token
    restarts: int = 0  # by Docker's restart policy, counted only while the current run is young (crash loop)

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in ("", "healthy") and not self.restarts

    @property
    def failed(self) -> bool:
        return self.state in _FAILED_STATES or self.health == "unhealthy" or self.restarts > 0

    @property
    def ok(self) -> bool:
        return self.ready if self.expected else self.state in ("missing", "")

    def describe(self) -> str:
        looping = f", crash-looping ({self.restarts} restarts)" if self.restarts else ""
        return f"{self.state}{f' ({self.health})' if self.health else ''}{looping}"


@dataclass
class MonitorStatus:
    server: str
    bot_configured: bool
    services: list[ServiceState]
    prometheus: PrometheusView | None
    prometheus_error: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def stopped(self) -> bool:
        return stopped(self.services)

    def to_json(self) -> dict[str, object]:
        prometheus: dict[str, object] | None = None
        if self.prometheus is not None:
            view = self.prometheus
            prometheus = {
                "targets_up": view.count("up"),
                "targets_down": view.count("down"),
                "targets_unknown": view.count("unknown"),
                "targets": [t.__dict__ for t in view.targets],
                "alerts_firing": view.firing,
                "alerts_pending": view.pending,
            }
        return {
            "server": self.server,
            "ok": self.ok,
            "stopped": self.stopped,
            "bot_configured": self.bot_configured,
            "services": [{**s.__dict__, "ok": s.ok} for s in self.services],
            "prometheus": prometheus,
            "prometheus_error": self.prometheus_error,
            "problems": self.problems,
        }


def service_states(
    records: Sequence[Mapping[str, object]], bot_configured: bool, looping: Mapping[str, int] | None = None
) -> list[ServiceState]:
    """The monitoring services from `docker compose ps --all --format json` records, in the stack's order; a
    service without a container is `missing`. `looping` maps a container name to its restarts while it is
    crash-looping (see `crash_loops`)."""
    by_service = containers_of(records)
    states = []
    for service in MONITORING_SERVICES:
        found = by_service.get(service, Container(service))
        states.append(
            ServiceState(
                service=service,
                container=found.name,
                state=found.state,
                health=found.health,
                status=found.status,
                expected=service != BOT_SERVICE or bot_configured,
                restarts=(looping or {}).get(found.name, 0),
            )
        )
    return states


def stopped(states: Sequence[ServiceState]) -> bool:
    """No monitoring service has a container: the stack was never started, or `monitor down` removed it (a stack
    that failed leaves its containers behind, exited or restarting)."""
    return all(s.state == "missing" for s in states)


def problems(states: Sequence[ServiceState], view: PrometheusView | None, bot_configured: bool) -> list[str]:
    """What makes `monitor status` exit 1: an expected service not running/healthy, Prometheus unreachable, or a
    target down (the bot's own target is excused while the bot is not configured). A stopped stack has none."""
    if stopped(states):
        return []
    found = [f"{s.service}: {s.describe()}" for s in states if not s.ok]
    if view is None:
        if any(s.service == "prometheus" and s.ready for s in states):
            found.append("prometheus: its API did not answer")
        return found
    for target in view.targets:
        if target.health == "down" and (bot_configured or target.job != BOT_SERVICE):
            found.append(f"target {target.job} ({target.instance}) down: {target.error}")
    return found


def _require_release(host: Host) -> None:
    if host.live_release() is None:
        name = host.server.name
        raise OvpnError(
            f"{name} has no live release: monitoring runs next to a deployed one", f"ovpn server init {name}"
        )


def _states(host: Host, bot_configured: bool) -> list[ServiceState]:
    records = host.compose_services(monitoring=True)
    names = [str(r["Name"]) for r in records if r.get("Name")]
    looping = gather(host.ssh, crash_loops(names)) if names else {}
    return service_states(records, bot_configured, looping)


def _logs_tail(host: Host, service: str, lines: int = 20) -> str:
    argv = host.compose(["logs", "--no-color", "--tail", str(lines), service], monitoring=True)
    result = host.ssh.run(argv, sudo=True, timeout=60, check=False)
    return (result.text + result.error_text).strip()


@dataclass
class UpResult:
    server: str
    bot_configured: bool
    services: list[ServiceState]
    messages: list[str]

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "bot_configured": self.bot_configured,
            "services": [{**s.__dict__, "ok": s.ok} for s in self.services],
            "messages": self.messages,
        }


def up(
    app: App,
    name: str,
    pull: str,
    progress: Progress,
    timeout: int = UP_TIMEOUT_SECONDS,
    accept_new_host_key: bool = False,
) -> UpResult:
    with app.reading() as repo:
        server = repo.server(name)
    with locked(app, server, "monitor up", accept_new_host_key=accept_new_host_key) as ssh:
        host = Host(ssh, server)
        _require_release(host)
        configured = host.bot_configured()
        messages = [] if configured else [BOT_NOT_CONFIGURED]
        for message in messages:
            progress(message)
        services = [s for s in MONITORING_SERVICES if s != BOT_SERVICE or configured]
        progress(f"starting {', '.join(services)} (docker compose up, --pull {pull})")
        # The services are named (the runtime's containers are not touched), so the bot is left out instead of
        # scaled to 0 (Compose refuses a named service that is scaled to 0); a bot left from a token that has
        # been emptied since is removed.
        args = ["up", "--detach", f"--pull={pull}", *services]
        result = ssh.run(host.compose(args, monitoring=True), sudo=True, timeout=900, check=False)
        if result.ok and not configured:
            stale = ssh.run(host.compose(["rm", "--stop", "--force", BOT_SERVICE], monitoring=True), sudo=True,
                            timeout=120, check=False)  # fmt: skip
            result = stale if not stale.ok else result
        if not result.ok:
            raise OvpnError(
                f"docker compose up of the monitoring stack failed on {name}: {result.error_text.strip()[-400:]}",
                "the images must be on the host or pullable (`--pull`); override them with "
                f"`ovpn server set {name} --image SERVICE=REF` and deploy",
            )
        states = wait_ready(host, configured, progress, timeout)
        return UpResult(name, configured, states, messages)


def wait_ready(host: Host, bot_configured: bool, progress: Progress, timeout: int) -> list[ServiceState]:
    """Poll (bounded) until every expected monitoring service runs and is healthy; fail on the first that
    exits, restarts or turns unhealthy, with its last log lines."""
    deadline = time.monotonic() + timeout
    report = Waiting(progress, timeout)
    seen: dict[str, str] = {}
    while True:
        states = _states(host, bot_configured)
        for s in states:
            if s.expected and seen.get(s.service) != s.describe():
                seen[s.service] = s.describe()
                progress(f"{s.service}: {s.describe()}")
        expected = [s for s in states if s.expected]
        failed = next((s for s in expected if s.failed), None)
        late = time.monotonic() > deadline
        if failed is None and late:
            failed = next((s for s in expected if not s.ready), None)
        if failed is not None:
            why = "did not become ready in time" if late and not failed.failed else "failed"
            raise OvpnError(
                f"monitoring on {host.server.name}: {failed.service} {why} ({failed.describe()})\n"
                f"last log lines of {failed.service}:\n{_logs_tail(host, failed.service)}",
                f"fix the cause, then run `ovpn server monitor up {host.server.name}` again",
            )
        if all(s.ready for s in expected):
            return states
        report.tick(", ".join(f"{s.service}: {s.describe()}" for s in expected if not s.ready))
        time.sleep(POLL_SECONDS)


def down(app: App, name: str, purge_data: bool, progress: Progress) -> list[str]:
    """Stop and remove the monitoring containers (the runtime keeps running); returns the removed volumes."""
    with app.reading() as repo:
        server = repo.server(name)
    with locked(app, server, "monitor down") as ssh:
        host = Host(ssh, server)
        _require_release(host)
        progress(f"stopping and removing {', '.join(MONITORING_SERVICES)}")
        argv = host.compose(["rm", "--stop", "--force", *MONITORING_SERVICES], monitoring=True)
        result = ssh.run(argv, sudo=True, timeout=300, check=False)
        if not result.ok:
            raise OvpnError(
                f"removing the monitoring containers on {name} failed: {result.error_text.strip()[-300:]}",
                "see `ovpn server status`",
            )
        if not purge_data:
            return []
        present = [v for v in VOLUMES if ssh.run(["docker", "volume", "inspect", v], sudo=True, check=False,
                                                  timeout=30).ok]  # fmt: skip
        if present:
            progress(f"removing the volumes {', '.join(present)}")
            ssh.run(["docker", "volume", "rm", *present], sudo=True, timeout=120)
        return present


def status(app: App, name: str) -> MonitorStatus:
    with app.reading() as repo:
        server = repo.server(name)
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        _require_release(host)
        return inspect(host)


def inspect(host: Host) -> MonitorStatus:
    """The monitoring services' containers and, while Prometheus runs, its targets and alerts (`monitor status`
    and doctor)."""
    configured = host.bot_configured()
    states = _states(host, configured)
    view: PrometheusView | None = None
    error = ""
    if any(s.service == "prometheus" and s.state == "running" for s in states):
        try:
            view = prometheus_view(host)
        except OvpnError as e:
            error = e.message
    return MonitorStatus(
        host.server.name, configured, states, view, error, problems(states, view, configured)
    )


def prometheus_view(host: Host) -> PrometheusView:
    """Prometheus' own view, asked from inside its container."""
    firing, pending = parse_alerts(gather(host.ssh, prometheus_api("/api/v1/alerts")))
    return PrometheusView(parse_targets(gather(host.ssh, prometheus_api("/api/v1/targets"))), firing, pending)
