"""`ovpn doctor`: an ordered list of checks, each pass/warn/fail/skip with a message and a hint.

Local checks come first (they need no host). If SSH fails, every remote check is skipped rather than failed
one by one, so the report points at the one real problem.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ovpn.core.model import RELAY_EMAIL, Server
from ovpn.core.names import AGENT_HEALTH_URL, HAPROXY_METRICS_URL, RELEASE_MARKER, RELEASES_DIR, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.facts import agent, xray
from ovpn.facts.base import gather
from ovpn.facts.haproxy import down_servers, pool_states
from ovpn.facts.host import DiskUsage, disk_usage, outcome
from ovpn.geodata.cache import resolve_geodata
from ovpn.ops.app import App
from ovpn.ops.deploy import required_services
from ovpn.ops.host import Host, connect
from ovpn.ops.monitor import inspect as inspect_monitoring
from ovpn.ops.render import RenderedServer, proxy_preset, render_server
from ovpn.remote.base import Remote
from ovpn.render.bundle import bundle_digest

Status = Literal["pass", "warn", "fail", "skip"]
RANK = {"pass": 0, "skip": 0, "warn": 1, "fail": 2}
GEODATA_WARN_AGE = timedelta(hours=72)
DISK_WARN, DISK_FAIL = 85, 95


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    hint: str = ""


def worst(checks: list[Check]) -> int:
    """The exit code: 0 when everything passed (or was skipped), 1 for a warning, 2 for a failure."""
    return max((RANK[c.status] for c in checks), default=0)


def _local(app: App, server: Server, checks: list[Check]) -> RenderedServer | None:
    try:
        rendered = render_server(app, server.name)
    except OvpnError as e:
        checks.append(Check("local config", "fail", e.message, e.hint))
        return None
    checks.append(Check("local config", "pass", f"the bundle renders ({len(rendered.bundle)} files)"))
    if server.is_proxy:
        with app.reading() as repo:
            pool = repo.attachments(server.name)
        if pool:
            checks.append(
                Check(
                    "proxy topology", "pass", f"{len(pool)} backend(s): {', '.join(a.backend for a in pool)}"
                )
            )
        else:
            checks.append(Check("proxy topology", "warn", "no backend attached: foreign traffic fails closed",
                                f"ovpn server backend attach --proxy {server.name} --backend <vpn-server>"))  # fmt: skip
        files = resolve_geodata(proxy_preset(server), app.data_dir, env=app.env)
        fetched = files.fetched_at or datetime.fromtimestamp(
            min(files.geosite.stat().st_mtime, files.geoip.stat().st_mtime), UTC
        )
        age = datetime.now(UTC) - fetched
        hours = int(age.total_seconds() // 3600)
        if age > GEODATA_WARN_AGE:
            checks.append(Check("geodata age", "warn", f"geodata is {hours} h old", "render again to refresh it, "
                                "or update the files OVPN_PROXY_GEOSITE_PATH/OVPN_PROXY_GEOIP_PATH point at"))  # fmt: skip
        else:
            checks.append(Check("geodata age", "pass", f"{hours} h old ({files.source})"))
    return rendered


def _remote(host: Host, rendered: RenderedServer | None, attached_to: list[str], checks: list[Check]) -> bool:
    """The host's checks; True when it has a live release (the monitoring checks need one)."""
    ssh, server = host.ssh, host.server

    def run(argv: list[str], timeout: int = 60) -> tuple[bool, str]:
        found = gather(ssh, outcome(argv, timeout))
        return found.ok, found.output

    ok, out = run(["true"])
    checks.append(Check("sudo", "pass" if ok else "fail", "passwordless sudo works" if ok else out,
                        "" if ok else "allow `sudo -n` for the SSH user (the Ansible bootstrap does)"))  # fmt: skip
    if not ok:
        return False
    ok, out = run(["docker", "version", "--format", "{{.Server.Version}}"])
    checks.append(Check("docker", "pass" if ok else "fail", f"Docker Engine {out}" if ok else out,
                        "" if ok else f"run `ovpn server init {server.name}`"))  # fmt: skip
    ok, out = run(["docker", "compose", "version", "--short"])
    checks.append(Check("compose", "pass" if ok else "fail", f"Compose {out}" if ok else out,
                        "" if ok else "install the Docker Compose v2 plugin"))  # fmt: skip
    live = host.live_release()
    if live is None:
        checks.append(Check("files", "fail", f"{RUNTIME_DIR} holds no ovpn release",
                            f"run `ovpn server init {server.name}`"))  # fmt: skip
        return False
    required = ["docker-compose.yml", ".env", "xray/config.json", RELEASE_MARKER]
    if server.is_proxy:
        required += ["haproxy/haproxy.cfg", "geodata/geosite.dat", "geodata/geoip.dat"]
    missing = [
        f for f in required if not ssh.run(["test", "-f", f"{RUNTIME_DIR}/{f}"], sudo=True, check=False).ok
    ]
    if missing:
        checks.append(Check("files", "fail", f"missing under {RUNTIME_DIR}: {', '.join(missing)}",
                            f"ovpn deploy {server.name} --force"))  # fmt: skip
    elif rendered is not None and bundle_digest(rendered.bundle) != live.bundle_sha256:
        checks.append(Check("files", "warn", f"{live.revision} is live, but the state now renders another bundle",
                            f"ovpn deploy {server.name} (see what changes with `ovpn deploy --plan`)"))  # fmt: skip
    else:
        checks.append(Check("files", "pass", f"{live.revision} is live and matches the state"))
    containers = host.containers()
    down = [s for s in required_services(server) if s not in containers or containers[s].state != "running"]
    checks.append(Check("services", "fail" if down else "pass",
                        f"not running: {', '.join(down)}" if down else "all required services are running",
                        f"ovpn server logs {server.name} --service {down[0]}" if down else ""))  # fmt: skip
    images = rendered.images if rendered else {}
    if images:
        tested = gather(
            ssh, xray.config_test(images["xray"], RUNTIME_DIR, geodata=server.is_proxy, pull="never")
        )
        checks.append(Check("xray config test", "pass" if tested.ok else "fail",
                            "Configuration OK" if tested.ok else tested.last_line or "failed",
                            _config_test_hint(tested, server)))  # fmt: skip
    status = agent.agent_status(gather(ssh, agent.fetch_in_agent(AGENT_HEALTH_URL)))
    checks.append(Check("agent health", "pass" if status == "ok" else "fail",
                        f"agent: {status}" if status else "the agent does not answer",
                        "" if status == "ok" else f"ovpn server logs {server.name} --service ovpn-agent"))  # fmt: skip
    usage = gather(ssh, disk_usage(["/", RELEASES_DIR]))
    fullest = max(usage, key=lambda u: (u.percent, u.mount), default=DiskUsage(0, "/"))
    level: Status = (
        "fail" if fullest.percent >= DISK_FAIL else "warn" if fullest.percent >= DISK_WARN else "pass"
    )
    checks.append(Check("disk", level, f"{fullest.mount} is {fullest.percent}% full",
                        "" if level == "pass" else "free space: old images (`docker image prune`), logs"))  # fmt: skip
    if attached_to:
        config = gather(ssh, xray.live_config())
        has = config is not None and xray.has_relay_identity(config, server)
        checks.append(Check(
            "relay identity", "pass" if has else "fail",
            f"the live config carries {RELAY_EMAIL}" if has else
            f"the live config lacks {RELAY_EMAIL}: {', '.join(attached_to)} get `invalid request user id`",
            "" if has else f"redeploy this backend first: ovpn deploy {server.name}; then the proxy",
        ))  # fmt: skip
    if server.is_proxy:
        states = pool_states(gather(ssh, agent.fetch_in_agent(HAPROXY_METRICS_URL)) or "")
        up = sorted(n for n, s in states.items() if s == "UP")
        if not states:
            checks.append(
                Check("backend pool", "warn", "HAProxy reports no backend", "attach a backend and deploy")
            )
        else:
            listing = ", ".join(f"{n} {s}" for n, s in sorted(states.items()))
            checks.append(Check("backend pool", "pass" if len(up) == len(states) else "warn" if up else "fail",
                                listing, _pool_hint(states)))  # fmt: skip
    return True


def _config_test_hint(tested: xray.ConfigTest, server: Server) -> str:
    if tested.ok:
        return ""
    if tested.image_missing:
        return (
            f"the Xray image for version {server.xray_version} is not on the host or not published: check the "
            f"version and set one that is (ovpn server set {server.name} --xray-version V), then deploy"
        )
    return f"ovpn deploy {server.name} --force"


def _pool_hint(states: dict[str, str]) -> str:
    """What to run for the pool's DOWN backends (they are ovpn servers of the same names)."""
    down = down_servers(states)
    if not down:
        return ""
    fixes = "; ".join(f"`ovpn doctor {b}`, then `ovpn deploy {b}`" for b in down)
    if len(down) == len(states):
        return f"every backend is down: foreign traffic fails closed; check each: {fixes}"
    return f"check each DOWN backend: {fixes}"


def _monitoring(host: Host, checks: list[Check]) -> None:
    """The optional monitoring stack: not started is a skip with the command that starts it; once started, its
    services and Prometheus' targets must be healthy (a warning otherwise), and firing alerts are listed."""
    name = host.server.name
    found = inspect_monitoring(host)
    if found.stopped:
        checks.append(Check("monitoring", "skip", "not started: this host raises no alerts",
                            f"ovpn server monitor up {name}"))  # fmt: skip
        return
    view = found.prometheus
    if found.problems:
        checks.append(
            Check("monitoring", "warn", "; ".join(found.problems), f"ovpn server monitor status {name}")
        )
    else:
        ready = sum(1 for s in found.services if s.ready)
        targets = f", Prometheus scrapes {view.count('up')} targets" if view else ""
        checks.append(Check("monitoring", "pass", f"{ready} services ready{targets}"))
    if view is not None:
        checks.append(Check(
            "alerts", "warn" if view.firing else "pass",
            f"firing: {', '.join(view.firing)}" if view.firing else "no alert is firing",
            "each alert is explained in docs/monitoring.md; Alertmanager relays them to the bot" if view.firing
            else "",
        ))  # fmt: skip


REMOTE_CHECKS = ("sudo", "docker", "compose", "files", "services", "xray config test", "agent health", "disk",
                 "monitoring")  # fmt: skip


def doctor(
    app: App, name: str, progress: Callable[[str], None], *, accept_new_host_key: bool = False
) -> list[Check]:
    with app.reading() as repo:
        server = repo.server(name)
        attached_to = repo.proxies_of(name)
    checks: list[Check] = []
    progress("local checks")
    rendered = _local(app, server, checks)
    progress("connecting")
    try:
        connection = connect(app, server, accept_new_host_key=accept_new_host_key)
    except OvpnError as e:
        return [*checks, *_unreachable(e)]
    return [*checks, *host_checks(connection, server, rendered, attached_to, progress)]


def _unreachable(error: OvpnError) -> list[Check]:
    return [Check("ssh", "fail", error.message, error.hint),
            *(Check(name, "skip", "skipped: no SSH connection") for name in REMOTE_CHECKS)]  # fmt: skip


def host_checks(
    connection: AbstractContextManager[Remote],
    server: Server,
    rendered: RenderedServer | None,
    attached_to: list[str],
    progress: Callable[[str], None],
) -> list[Check]:
    """The checks made on the host. When it cannot be reached, SSH fails and every other check is skipped; a
    failure after connecting is one `remote` failure after the checks made so far."""
    checks: list[Check] = []
    connected = False
    try:
        with connection as remote:
            remote.run(["true"], timeout=30)
            connected = True
            checks.append(Check("ssh", "pass", f"connected to {remote.target.label}"))
            host = Host(remote, server)
            if _remote(host, rendered, attached_to, checks):
                progress("monitoring")
                _monitoring(host, checks)
    except OvpnError as e:
        checks += [Check("remote", "fail", e.message, e.hint)] if connected else _unreachable(e)
    return checks
