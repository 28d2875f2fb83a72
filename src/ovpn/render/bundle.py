"""The deploy bundle: relative path under /opt/ovpn -> file content and mode."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
