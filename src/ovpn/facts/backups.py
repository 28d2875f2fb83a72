"""The archives in a host's backups folder: each one's name, size, modification time and SHA-256, in one command.

Only names made of letters, digits, `.`, `_` and `-` are reported; sha256sum escapes a name with a backslash or a
newline and such a line does not parse, so no odd name reaches the terminal. Symlinks and folders are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ovpn.facts.base import Fact
from ovpn.remote.base import RemoteResult

_SCRIPT = (
    'cd "$1" 2>/dev/null || exit 0; for f in *.tar.gz; do [ -f "$f" ] && [ ! -L "$f" ] || continue; '
    'printf "%s %s\\n" "$(stat -c "%Y %s" -- "$f")" "$(sha256sum -- "$f")"; done'
)
_LINE = re.compile(r"^(\d+) (\d+) ([0-9a-f]{64})  ([A-Za-z0-9._-]+\.tar\.gz)\Z")


@dataclass(frozen=True)
class HostArchive:
    name: str
    size_bytes: int
    modified: int  # seconds since the epoch
    sha256: str


def parse_archives(text: str) -> list[HostArchive]:
    """Newest first, as `server backup --keep` prunes them (`ls -t`)."""
    found = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is not None:
            modified, size, digest, name = match.groups()
            found.append(HostArchive(name, int(size), int(modified), digest))
    return sorted(found, key=lambda a: (a.modified, a.name), reverse=True)


def _archives(result: RemoteResult) -> list[HostArchive]:
    return parse_archives(result.text)


def archives(directory: str) -> Fact[list[HostArchive]]:
    """A folder that does not exist holds no archive."""
    return Fact(("sh", "-c", _SCRIPT, "sh", directory), _archives, timeout=600, check=True)
