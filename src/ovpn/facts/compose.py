"""The Compose project on a host: the command line for it, its containers, and their logs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ovpn.core.names import MAIN_COMPOSE, MONITORING_COMPOSE, PROJECT, RUNTIME_DIR
from ovpn.facts.base import Fact, combined_output
from ovpn.remote.base import RemoteResult


def compose_argv(args: Sequence[str], *, directory: str = RUNTIME_DIR, monitoring: bool = False) -> list[str]:
    """`docker compose` on ovpn's project in `directory`, with the monitoring file layered on when asked."""
    files = [MAIN_COMPOSE, MONITORING_COMPOSE] if monitoring else [MAIN_COMPOSE]
    argv = ["docker", "compose", "--project-name", PROJECT, "--project-directory", directory]
    for name in files:
        argv += ["-f", f"{directory}/{name}"]
    return [*argv, *args]


@dataclass(frozen=True)
class Container:
    """One service's container as `docker compose ps` reports it; `state` is `missing` when it has none."""

    service: str
    name: str = ""
    state: str = "missing"
    health: str = ""
    status: str = ""
    id: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == "running" and self.health in ("", "healthy")

    def describe(self) -> str:
        return f"{self.state}{f' ({self.health})' if self.health else ''}"

    def same_run(self, other: Container) -> bool:
        """The same container in the same state and health: not restarted in between. `status` ("Up 5
        seconds") changes by itself, so it does not count."""
        return (self.id, self.state, self.health) == (other.id, other.state, other.health)


def parse_ps(text: str) -> list[dict[str, object]]:
    """`docker compose ps --format json` -> its records (Compose prints a JSON array or one object per line,
    by version)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def containers_of(records: Sequence[Mapping[str, object]]) -> dict[str, Container]:
    """service -> its container, from `parse_ps` records."""
    found = {}
    for record in records:
        service = str(record.get("Service", ""))
        found[service] = Container(
            service=service,
            name=str(record.get("Name", "")),
            state=str(record.get("State", "")) or "missing",
            health=str(record.get("Health", "")),
            status=str(record.get("Status", "")),
            id=str(record.get("ID", "")),
        )
    return found


def _records(result: RemoteResult) -> list[dict[str, object]]:
    return parse_ps(result.text)


def services(*, monitoring: bool = False) -> Fact[list[dict[str, object]]]:
    """Every container of the project, running or not."""
    argv = compose_argv(["ps", "--all", "--format", "json"], monitoring=monitoring)
    return Fact(tuple(argv), _records, check=True)


def logs_tail(service: str, lines: int, *, monitoring: bool = False) -> Fact[str]:
    """The service's last log lines (stdout and stderr)."""
    argv = compose_argv(["logs", "--no-color", "--tail", str(lines), service], monitoring=monitoring)
    return Fact(tuple(argv), combined_output)
