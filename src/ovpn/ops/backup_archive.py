"""What a backup archive must be before `server restore` extracts it: pure checks on its manifest and its listing.

The listing is GNU tar's verbose one with C quoting (`listing_argv`), so every name is one double-quoted field
and a name can hold no ambiguous ` -> `. Names are kept in that quoted form: `/` and `.` are never escaped, so
the path checks are exact, and a name with control characters cannot reach the operator's terminal raw.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ovpn.errors import OvpnError

MANIFEST_NAME = "ovpn-backup.json"
MANIFEST_FORMAT = 1
RUNTIME_TOP = "runtime"
AGENT_DATA_TOP = "agent-data"
RELEASE_MEMBER = f"{RUNTIME_TOP}/.ovpn-release.json"
# What `server backup` names an archive: SERVER-<UTC time>.tar.gz.
ARCHIVE_NAME = re.compile(r"^[a-z0-9-]+-\d{8}T\d{6}Z\.tar\.gz\Z")
DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
_TOPS = (RUNTIME_TOP, AGENT_DATA_TOP)
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(
    rf"^(?P<mode>\S{{10}})\s+\S+\s+(?P<size>\d+(?:,\s*\d+)?)\s+\S+\s+\S+\s+{_QUOTED}(?:\s+(->|link to)\s+{_QUOTED})?$"
)
_KINDS = {"-": "file", "d": "directory", "l": "symlink", "h": "hard link"}
_REFUSED_KINDS = {"c": "a character device", "b": "a block device", "p": "a FIFO", "s": "a socket"}


@dataclass(frozen=True)
class Manifest:
    """Which server an archive was taken from; written into the archive as `ovpn-backup.json`."""

    server: str
    role: str
    created_at: str
    revision: str

    def to_json(self) -> bytes:
        doc = {"format": MANIFEST_FORMAT, "server": self.server, "role": self.role,
               "created_at": self.created_at, "revision": self.revision}  # fmt: skip
        return (json.dumps(doc, indent=2) + "\n").encode()


def parse_manifest(text: str) -> Manifest:
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown format {doc.get('format') if isinstance(doc, dict) else doc!r}")
        fields = [doc[key] for key in ("server", "role", "created_at", "revision")]
        if not all(isinstance(value, str) for value in fields):
            raise ValueError("a field is not a string")
    except (ValueError, KeyError) as e:
        raise OvpnError(
            f"the archive's {MANIFEST_NAME} is unreadable ({e})",
            "use an archive made by `ovpn server backup`",
        ) from None
    return Manifest(*fields)


def check_origin(manifest: Manifest | None, server: str, role: str, *, recorded: bool) -> None:
    """Refuse another server's archive. One without a manifest (taken before ovpn wrote one) is accepted only when
    this state recorded it for this server: that record, not the file name, says whose it is."""
    if manifest is None:
        if not recorded:
            raise OvpnError(
                f"the archive does not say which server it was taken from (no {MANIFEST_NAME})",
                "an archive from an older ovpn can be restored only from the state that took it",
            )
        return
    if (manifest.server, manifest.role) != (server, role):
        raise OvpnError(
            f"the archive was taken from {manifest.server} ({manifest.role}), not from {server} ({role})",
            f"restore one of {server}'s own archives; to move a server, deploy it instead",
        )


@dataclass(frozen=True)
class Member:
    """One listing line: its type letter, its `ls`-style mode, its name and, for links, the target (C-quoted)."""

    kind: str
    mode: str
    name: str
    target: str = ""


def listing_argv(archive: str) -> list[str]:
    return ["tar", "-tvzf", archive, "--quoting-style=c", "--numeric-owner", "--full-time"]


def parse_listing(text: str) -> list[Member]:
    members = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise OvpnError(
                f"the archive's listing has a line ovpn cannot read: {line[:120]!r}",
                "use an archive made by `ovpn server backup`",
            )
        mode, _, name, _, target = match.groups()
        members.append(Member(mode[0], mode, name, target or ""))
    return members


def _path_problem(path: str) -> str | None:
    if path.startswith("/"):
        return "is an absolute path"
    if ".." in path.split("/"):
        return "goes up with '..'"
    return None


def _top(path: str) -> str:
    return path.split("/", 1)[0]


def member_problems(members: list[Member]) -> list[str]:
    """Why these entries must not be extracted as root, one line each (empty: all is well).

    Only files, directories and links that stay inside are allowed: no device files, FIFOs or sockets, no
    setuid or setgid bit, nothing outside `runtime/` and `agent-data/` (plus the manifest). A symlink may only
    point down, relative and without `..`: a lexical check of a target with `..` can be fooled by another link
    on the way, and ovpn itself never writes a symlink into a release or the agent's data.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for m in members:
        name = m.name.rstrip("/")
        where = f'"{m.name}"'
        if name in seen:
            problems.append(f"{where} appears twice")
        seen.add(name)
        if m.kind in _REFUSED_KINDS:
            problems.append(f"{where} is {_REFUSED_KINDS[m.kind]}")
            continue
        if m.kind not in _KINDS:
            problems.append(f"{where} has an entry type ovpn does not restore ({m.kind!r})")
            continue
        if problem := _path_problem(name):
            problems.append(f"{where} {problem}")
            continue
        if name != MANIFEST_NAME and _top(name) not in _TOPS:
            problems.append(f"{where} is outside {RUNTIME_TOP}/ and {AGENT_DATA_TOP}/")
        if name == MANIFEST_NAME and m.kind != "-":
            problems.append(f"{where} is not a regular file")
        if m.mode[3] in "sS":
            problems.append(f"{where} is setuid")
        if m.mode[6] in "sS":
            problems.append(f"{where} is setgid")
        if m.kind == "l" and (not m.target or m.target.startswith("/") or ".." in m.target.split("/")):
            problems.append(f'{where} is a symlink to "{m.target}", outside its folder')
        if m.kind == "h" and (_path_problem(m.target) or _top(m.target) != _top(name)):
            problems.append(f'{where} is a hard link to "{m.target}", outside its folder')
    return problems


def has_release(members: list[Member]) -> bool:
    return any(m.kind == "-" and m.name == RELEASE_MEMBER for m in members)


def check_members(archive: str, members: list[Member]) -> None:
    """Refuse an archive with an unsafe entry (`member_problems`) or without a release, naming the first few."""
    problems = member_problems(members)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise OvpnError(f"{archive} holds entries ovpn will not restore: {'; '.join(problems[:3])}{more}",
                        "it was not made by `ovpn server backup` or was altered since; use another backup")  # fmt: skip
    if not has_release(members):
        raise OvpnError(f"{archive} holds no ovpn release", "use an archive made by `ovpn server backup`")
