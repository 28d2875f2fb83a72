"""Docker's own view of containers, beyond what Compose reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ovpn.facts.base import Fact
from ovpn.remote.base import RemoteResult

# A container Docker restarted (restart policy) whose current run is younger than this is crash-looping: between
# two crashes it shows as "running", so a snapshot of its state alone would call it fine.
CRASH_LOOP_SECONDS = 60


CRASH_LOOP_FORMAT = "{{.Name}} {{.RestartCount}} {{.State.StartedAt}}"


def parse_crash_loops(output: str) -> dict[str, int]:
    """The output of `date -u +%s` followed by `docker inspect --format CRASH_LOOP_FORMAT` -> the containers
    Docker restarted whose current run began less than CRASH_LOOP_SECONDS before the host's clock, with their
    restart counts. Output it cannot read says nothing (the container states still do)."""
    lines = output.strip().splitlines()
    looping: dict[str, int] = {}
    try:
        now = datetime.fromtimestamp(int(lines[0]), UTC)
        for line in lines[1:]:
            name, count, started = line.split()
            age = (now - datetime.fromisoformat(started)).total_seconds()
            if int(count) > 0 and age < CRASH_LOOP_SECONDS:
                looping[name.lstrip("/")] = int(count)
    except (IndexError, ValueError):
        return {}
    return looping


def _looping(result: RemoteResult) -> dict[str, int]:
    return parse_crash_loops(result.text) if result.ok else {}


def crash_loops(containers: Sequence[str]) -> Fact[dict[str, int]]:
    """The named containers that are crash-looping, read with the host's clock."""
    script = f'date -u +%s && docker inspect --format "{CRASH_LOOP_FORMAT}" "$@"'
    return Fact(("sh", "-c", script, "sh", *containers), _looping)
