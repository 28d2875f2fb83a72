"""The live release: which revision and bundle /opt/ovpn points at."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ovpn.core.names import RELEASE_MARKER, RELEASES_DIR, RUNTIME_DIR
from ovpn.facts.base import Fact
from ovpn.remote.base import RemoteResult

_SCRIPT = 'cat "$1/$2" && readlink -f "$1"'


@dataclass(frozen=True)
class LiveRelease:
    revision: str
    bundle_sha256: str
    directory: str


class UnreadableMarker(ValueError):
    """The release marker exists but does not say which release it is."""


def parse_live_release(result: RemoteResult) -> LiveRelease | None:
    """The marker's JSON then the resolved directory (last line) -> the live release; None when the host has no
    marker (never deployed). Raises `UnreadableMarker` for a marker edited by hand."""
    if not result.ok:
        return None
    body, _, directory = result.text.rstrip("\n").rpartition("\n")
    try:
        doc = json.loads(body)
        return LiveRelease(str(doc["revision"]), str(doc["bundle_sha256"]), directory.strip())
    except (ValueError, KeyError, TypeError) as e:
        raise UnreadableMarker(str(e)) from None


def live_release() -> Fact[LiveRelease | None]:
    return Fact(("sh", "-c", _SCRIPT, "sh", RUNTIME_DIR, RELEASE_MARKER), parse_live_release, timeout=30)


def parse_file_digests(result: RemoteResult) -> dict[str, str] | None:
    """`sha256sum` lines of the live release's files -> path (relative, without the marker) -> digest; None when
    the listing failed (no release)."""
    if not result.ok:
        return None
    sums: dict[str, str] = {}
    for line in result.text.splitlines():
        digest, _, path = line.partition("  ")
        sums[path.removeprefix(f"{RUNTIME_DIR}/")] = digest
    sums.pop(RELEASE_MARKER, None)
    return sums


def file_digests() -> Fact[dict[str, str] | None]:
    """Every file of the live release, hashed on the host (one command, whatever the number of files)."""
    argv = ("find", "-L", f"{RUNTIME_DIR}/", "-type", "f", "-exec", "sha256sum", "{}", "+")
    return Fact(argv, parse_file_digests, timeout=120)


# One line per kept release: its directory name, a tab, then its marker on one line.
_KEPT_SCRIPT = (
    'cd "$1" 2>/dev/null || exit 0; for d in */; do d=${d%/}; case "$d" in *.partial) continue;; esac; '
    '[ -f "$d/$2" ] || continue; printf "%s\\t" "$d"; tr -d "\\n" < "$d/$2"; echo; done'
)


def parse_kept_releases(result: RemoteResult) -> list[LiveRelease]:
    """The releases kept on the host, oldest first (their names start with their UTC time); a marker that does
    not parse leaves its release out: it cannot be told apart from a directory of someone else's."""
    kept: list[LiveRelease] = []
    for line in result.text.splitlines() if result.ok else []:
        name, _, marker = line.partition("\t")
        try:
            doc = json.loads(marker)
            kept.append(
                LiveRelease(str(doc["revision"]), str(doc["bundle_sha256"]), f"{RELEASES_DIR}/{name}")
            )
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(kept, key=lambda r: r.directory)


def kept_releases() -> Fact[list[LiveRelease]]:
    return Fact(
        ("sh", "-c", _KEPT_SCRIPT, "sh", RELEASES_DIR, RELEASE_MARKER), parse_kept_releases, timeout=60
    )
