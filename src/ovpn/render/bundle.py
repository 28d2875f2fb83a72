"""The deploy bundle: relative path under /opt/ovpn -> file content and mode."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BundleFile:
    """A file's bytes, mode and, when a container user must read it, its numeric group on the host."""

    content: bytes
    mode: int = 0o644
    group: int | None = None


Bundle = dict[str, BundleFile]


def bundle_digest(bundle: Bundle) -> str:
    """A stable sha256 over paths, modes and contents (the revision's bundle hash)."""
    h = hashlib.sha256()
    for path in sorted(bundle):
        f = bundle[path]
        h.update(f"{path}\0{f.mode:o}\0{f.group}\0".encode())
        h.update(hashlib.sha256(f.content).digest())
    return h.hexdigest()


FileChangeKind = Literal["added", "changed", "removed"]


def bundle_changes(
    live: Mapping[str, str], bundle: Bundle, kept: Collection[str] = ()
) -> list[tuple[str, FileChangeKind]]:
    """What a bundle changes against a live release's file digests (path -> sha256), by path. A file in `kept`
    that the bundle ships empty is the host's to keep (a secret set there), not a change."""
    changes: list[tuple[str, FileChangeKind]] = []
    for path, f in bundle.items():
        digest = hashlib.sha256(f.content).hexdigest()
        if path not in live:
            changes.append((path, "added"))
        elif live[path] != digest and not (path in kept and not f.content):
            changes.append((path, "changed"))
    changes += [(path, "removed") for path in set(live) - set(bundle)]
    return sorted(changes)


def describe_changes(changes: Sequence[tuple[str, FileChangeKind]], limit: int = 6) -> str:
    """One line for the deploy history: `changed a, b; added c`, the paths after `limit` counted, not listed."""
    parts = []
    for kind in ("changed", "added", "removed"):
        paths = [p for p, k in changes if k == kind]
        if paths:
            shown = ", ".join(paths[:limit]) + (
                f" and {len(paths) - limit} more" if len(paths) > limit else ""
            )
            parts.append(f"{kind} {shown}")
    return "; ".join(parts) or "no file changed"
