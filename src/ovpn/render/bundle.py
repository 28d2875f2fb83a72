"""The deploy bundle: relative path under /opt/ovpn -> file content and mode."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class BundleFile:
    content: bytes
    mode: int = 0o644


Bundle = dict[str, BundleFile]


def bundle_digest(bundle: Bundle) -> str:
    """A stable sha256 over paths, modes and contents (the revision's bundle hash)."""
    h = hashlib.sha256()
    for path in sorted(bundle):
        f = bundle[path]
        h.update(path.encode() + b"\0" + oct(f.mode).encode() + b"\0")
        h.update(hashlib.sha256(f.content).digest())
    return h.hexdigest()
