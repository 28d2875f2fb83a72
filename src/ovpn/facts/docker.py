"""Docker's own view of containers beyond what Compose reports, and why `docker run` itself failed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
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


# `docker run` exits 125 when Docker itself failed (no such image, a pull refused, a bad flag), before the
# container's command ran.
DOCKER_RUN_FAILED = 125

# What the daemon says when the image cannot be had: the tag or repository does not exist in the registry
# (`manifest unknown`, `manifest for REF not found`), the registry refuses it (`pull access denied`), or it is
# not on the host and may not be pulled (`No such image`, with `--pull=never`).
_IMAGE_MISSING = ("manifest unknown", "manifest for ", "pull access denied", "no such image",
                  "repository does not exist", "invalid reference format")  # fmt: skip
# Lines docker prints around its error that say nothing about the cause.
_NOISE = re.compile(r"^(?:See '.*--help'\.|Run '.*--help' for more information)\Z")
_DAEMON_ERROR = "Error response from daemon:"


@dataclass(frozen=True)
class RunFailure:
    """Why `docker run` failed before its command ran: docker's first line that says so, and whether the cause
    is the image itself (missing, unknown to the registry, or refused)."""

    line: str
    image_missing: bool


def parse_run_failure(output: str) -> RunFailure | None:
    """`docker run`'s output when it exited 125 -> its first meaningful error line (the daemon's error when it
    gave one, with docker's `docker: ` prefix dropped); None when docker printed nothing but help noise."""
    lines = [line.strip() for line in output.splitlines()]
    meaningful = [line for line in lines if line and not _NOISE.match(line)]
    if not meaningful:
        return None
    daemon = next((line for line in meaningful if _DAEMON_ERROR in line), None)
    line = daemon[daemon.index(_DAEMON_ERROR) :] if daemon else meaningful[0].removeprefix("docker: ")
    text = "\n".join(meaningful).lower()
    return RunFailure(line, any(marker in text for marker in _IMAGE_MISSING))
