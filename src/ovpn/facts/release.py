"""The live release: which revision and bundle /opt/ovpn points at."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ovpn.core.names import RELEASE_MARKER, RUNTIME_DIR
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
