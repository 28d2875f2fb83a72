"""Host keys in ovpn's own known_hosts: the keys pinned for a host, the line that reports a key pinned on first
contact, and the errors for an unknown or a changed key, each with the exact command that gets past it.

ssh files a key under `host`, or `[host]:port` for another port than 22; `ssh-keygen -F` and `-R` take that same
name and find it in hashed files too, so ovpn never reads the file itself.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from ovpn.errors import HostUnreachable
from ovpn.remote.base import SshTarget

KEYGEN_TIMEOUT_SECONDS = 15
RERUN_WITH_OPTION = "run again with --accept-new-host-key"

_CHANGED = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "has changed and you have requested strict checking")
_REFUSED = ("Host key verification failed", "host key is known for")
_OFFERED = re.compile(
    r"The fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/=]+)"
)
_OFFENDING = re.compile(r"^Offending \S+ key in (.+):\d+\s*$", re.MULTILINE)


def known_hosts_name(target: SshTarget) -> str:
    """The name ssh files the target's key under: `host`, or `[host]:port` for another port than 22."""
    return target.host if target.port == 22 else f"[{target.host}]:{target.port}"


def address(target: SshTarget) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def title(target: SshTarget) -> str:
    """How errors name the host: the server's name and its address."""
    return f"{target.name} ({address(target)})" if target.name else address(target)


def pin_with_doctor(server: str) -> str:
    """The advice of a command that has no --accept-new-host-key: doctor pins the key and changes nothing."""
    return f"pin it with `ovpn doctor {server} --accept-new-host-key` and run again"


def pinned_keys(known_hosts: Path, target: SshTarget) -> frozenset[str]:
    """The keys the file holds for the target, each as `TYPE SHA256:...`."""
    found = subprocess.run(
        ["ssh-keygen", "-l", "-F", known_hosts_name(target), "-f", str(known_hosts)],
        capture_output=True, text=True, timeout=KEYGEN_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    fields = (line.split() for line in found.stdout.splitlines() if not line.startswith("#"))
    return frozenset(f"{f[1]} {f[2]}" for f in fields if len(f) >= 3)


def new_key_line(target: SshTarget, key: str, known_hosts: Path) -> str:
    return f"{target.name or target.host}: new host key {address(target)} {key} recorded in {known_hosts}"


def removal_command(known_hosts: Path, target: SshTarget) -> str:
    return shlex.join(["ssh-keygen", "-f", str(known_hosts), "-R", known_hosts_name(target)])


def host_key_failure(
    target: SshTarget, stderr: str, known_hosts: Path | None, pin_advice: str
) -> HostUnreachable | None:
    """The error for ssh's refusal of the host's key, or None when ssh failed for another reason. (ssh reports a
    key of another type than the one on file as changed too.) The removal command names the file ssh found the
    old key in: ovpn's known_hosts, or the operator's own."""
    if not any(s in stderr for s in _CHANGED):
        if not any(s in stderr for s in _REFUSED):
            return None
        return HostUnreachable(
            f"the host key of {title(target)} is not known: refusing to connect",
            f"on first contact, {pin_advice}; ovpn prints the fingerprint it pins, to compare with "
            "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server",
        )
    offending = _OFFENDING.search(stderr)
    holder = Path(offending[1]) if offending else known_hosts
    offered = _OFFERED.search(stderr)
    what = f"the host now offers {offered[1]} {offered[2]}" if offered else "it is not the key on file"
    remove = (
        removal_command(holder, target)
        if holder
        else shlex.join(["ssh-keygen", "-R", known_hosts_name(target)])
    )
    return HostUnreachable(
        f"the host key of {title(target)} changed: {what}; refusing to connect",
        f"if the server was reinstalled, verify its new key out of band, remove the old one with `{remove}`, "
        f"then {pin_advice}",
    )
