"""The host itself: whether a command works there, and how full its disks are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ovpn.facts.base import Fact, combined_output
from ovpn.remote.base import RemoteResult


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: str  # stdout then stderr, stripped


def _outcome(result: RemoteResult) -> Outcome:
    return Outcome(result.ok, combined_output(result))


def outcome(argv: Sequence[str], timeout: int = 60) -> Fact[Outcome]:
    """Whether a command succeeds as root, and what it printed (`true`, `docker version`, ...)."""
    return Fact(tuple(argv), _outcome, timeout=timeout)


@dataclass(frozen=True)
class DiskUsage:
    percent: int
    mount: str


def parse_disk_usage(text: str) -> list[DiskUsage]:
    """`df --output=pcent,target` -> one entry per line after the header."""
    usage = []
    for line in text.splitlines()[1:]:
        if line.strip():
            percent, mount = line.split(maxsplit=1)
            usage.append(DiskUsage(int(percent.rstrip("%")), mount.strip()))
    return usage


def _usage(result: RemoteResult) -> list[DiskUsage]:
    return parse_disk_usage(result.text)


def disk_usage(paths: Sequence[str]) -> Fact[list[DiskUsage]]:
    return Fact(("df", "--output=pcent,target", *paths), _usage)
