"""Everyday host operations: init, status, logs, restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ovpn.core.model import Server
from ovpn.core.names import BACKUP_DIR, RELEASES_DIR, RUNTIME_DIR, RUNTIME_SERVICES
from ovpn.errors import InvalidInput, OvpnError
from ovpn.facts.compose import Container
from ovpn.ops.app import App
from ovpn.ops.deploy import DeployOptions, DeployOutcome, Progress, deploy, required_services
from ovpn.ops.host import Host, connect, locked
from ovpn.ops.waiting import Waiting
from ovpn.render.monitoring.spec import MONITORING_SERVICES

RESTART_TIMEOUT_SECONDS = 90


def services_of(server: Server) -> tuple[str, ...]:
    """The services `server` can run: its role's runtime services, then the monitoring stack's."""
    return (*RUNTIME_SERVICES[server.role], *MONITORING_SERVICES)


def _check_service(server: Server, name: str | None) -> None:
    """Refuse, before any host is contacted, a service that `server` does not run."""
    if name is None or name in services_of(server):
        return
    hint = f"services of {server.name}: {', '.join(services_of(server))}"
    if any(name in runtime for runtime in RUNTIME_SERVICES.values()):
        raise InvalidInput(f"{server.name} is a {server.role} server and runs no {name}", hint)
    raise InvalidInput(f"unknown service {name!r}", hint)


def check_host(host: Host, progress: Progress) -> None:
    """OS, sudo, Docker and Compose; installs Docker Engine from the distribution when it is missing."""
    ssh = host.ssh
    os_release = ssh.run(["cat", "/etc/os-release"], timeout=30).text
    if "ID=debian" not in os_release and "ID=ubuntu" not in os_release:
        raise OvpnError(
            f"{host.server.name} is not Debian or Ubuntu", "ovpn manages Debian 12 (or Ubuntu) hosts"
        )
    if not ssh.run(["true"], sudo=True, check=False, timeout=30).ok:
        raise OvpnError(
            f"{host.server.ssh_user} on {host.server.name} has no passwordless sudo",
            "run the Ansible bootstrap playbook, or allow `sudo -n` for this user",
        )
    if not ssh.run(["docker", "version"], sudo=True, check=False, timeout=60).ok:
        progress("Docker is missing: installing docker.io from the distribution")
        ssh.run(["apt-get", "update", "-q"], sudo=True, timeout=600)
        ssh.run(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "docker.io"],
                sudo=True, timeout=1200)  # fmt: skip
    if not ssh.run(["docker", "compose", "version"], sudo=True, check=False, timeout=60).ok:
        raise OvpnError(
            f"Docker Compose v2 (`docker compose`) is missing on {host.server.name}",
            "install the Compose plugin (the Ansible bootstrap playbook does), then run `ovpn server init` again",
        )


def init(app: App, name: str, options: DeployOptions, progress: Progress) -> DeployOutcome:
    with app.reading() as repo:
        server = repo.server(name)
    with locked(app, server, "server init", accept_new_host_key=options.accept_new_host_key) as ssh:
        host = Host(ssh, server)
        progress(f"checking {name}: OS, sudo, Docker, Compose")
        check_host(host, progress)
        ssh.run(["mkdir", "-p", RELEASES_DIR, BACKUP_DIR], sudo=True, timeout=30)
        ssh.run(["chmod", "0750", RELEASES_DIR, BACKUP_DIR], sudo=True, timeout=30)
        ssh.run(["rmdir", "--ignore-fail-on-non-empty", RUNTIME_DIR], sudo=True, timeout=30, check=False)
        if ssh.run(
            ["test", "-d", RUNTIME_DIR, "-a", "!", "-L", RUNTIME_DIR], sudo=True, check=False, timeout=30
        ).ok:
            raise OvpnError(
                f"{RUNTIME_DIR} on {name} is a directory that ovpn did not create",
                f"move it away (it is not touched), then run `ovpn server init {name}` again",
            )
        return deploy(app, name, options, progress)


def status(app: App, name: str) -> list[Container]:
    """The role's runtime services (`missing` where there is no container), then the host's other containers of
    the project (the monitoring stack's while it runs)."""
    with app.reading() as repo:
        server = repo.server(name)
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        found = host.containers(monitoring=host.monitoring_running())
    expected = required_services(server)
    return [found.get(s, Container(s)) for s in expected] + [c for s, c in found.items() if s not in expected]


def logs(app: App, name: str, service: str | None, tail: int, follow: bool) -> Iterator[str]:
    if tail <= 0:
        raise OvpnError(f"invalid --tail {tail}", "give a positive number of lines")
    with app.reading() as repo:
        server = repo.server(name)
    _check_service(server, service)
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        monitoring = service in MONITORING_SERVICES or host.monitoring_running()
        args = ["logs", "--no-color", "--tail", str(tail)]
        if follow:
            args.append("--follow")
        argv = host.compose([*args, *([service] if service else [])], monitoring=monitoring)
        if follow:
            yield from ssh.stream(argv, sudo=True)
        else:
            yield from ssh.run(argv, sudo=True, timeout=120).text.splitlines()


def recent_logs(app: App, name: str, tail: int) -> dict[str, list[str]]:
    """The last `tail` log lines of each runtime service (xray, the agent, and haproxy on a proxy)."""
    with app.reading() as repo:
        server = repo.server(name)
    return {
        service: list(logs(app, name, service, tail, follow=False)) for service in required_services(server)
    }


def restart(
    app: App, name: str, service: str | None, progress: Progress, timeout: float = RESTART_TIMEOUT_SECONDS
) -> list[str]:
    """Restart the runtime services (or one service), then wait (bounded) until each runs again; the restarted
    services. A service that does not come back fails with its last log lines."""
    with app.reading() as repo:
        server = repo.server(name)
    _check_service(server, service)
    targets = [service] if service else required_services(server)
    with locked(app, server, "restart") as ssh:
        host = Host(ssh, server)
        monitoring = service in MONITORING_SERVICES or host.monitoring_running()
        progress(f"restarting {', '.join(targets)}")
        ssh.run(host.compose(["restart", *targets], monitoring=monitoring), sudo=True, timeout=300)
        deadline = time.monotonic() + timeout
        report = Waiting(progress, timeout)
        while True:
            states = {str(s.get("Service")): s for s in host.compose_services(monitoring=monitoring)}
            waiting = [t for t in targets if not _running(states.get(t))]
            if not waiting:
                return targets
            report.tick(", ".join(f"{t}: {_state_of(states.get(t))}" for t in waiting))
            if time.monotonic() > deadline:
                logs = ssh.run(host.compose(["logs", "--no-color", "--tail", "20", waiting[0]], monitoring=monitoring),
                               sudo=True, timeout=60, check=False)  # fmt: skip
                raise OvpnError(
                    f"{name}: {', '.join(waiting)} did not come back after the restart\n{logs.text.strip()}",
                    f"see `ovpn doctor {name}` and `ovpn server logs {name} --service {waiting[0]}`",
                )
            time.sleep(1)


def _state_of(record: dict[str, object] | None) -> str:
    if record is None:
        return "no container"
    health = record.get("Health")
    return f"{record.get('State')} ({health})" if health else str(record.get("State"))


def _running(record: dict[str, object] | None) -> bool:
    """Running, and healthy where the service has a healthcheck."""
    if record is None or record.get("State") != "running":
        return False
    return record.get("Health") in (None, "", "healthy")
