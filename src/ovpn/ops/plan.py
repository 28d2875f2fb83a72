"""`ovpn deploy --plan`: what a deploy would change on the host, file by file, touching nothing."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field

from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.host import RELEASE_MARKER, RUNTIME_DIR, Host, connect
from ovpn.ops.render import render_server

SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
BINARY_SUFFIXES = (".dat", ".whl")
# Files a deploy keeps from the live release when the bundle ships them empty.
KEPT_ON_HOST = ("monitoring/secrets/telegram_bot_token",)


@dataclass
class FileChange:
    path: str
    change: str  # "added" | "changed" | "removed"
    diff: list[str] = field(default_factory=list)


@dataclass
class Plan:
    server: str
    live_revision: str | None
    changes: list[FileChange]

    @property
    def empty(self) -> bool:
        return not self.changes


def _mask_env(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        key, sep, _ = line.partition("=")
        lines.append(f"{key}=<secret>" if sep and any(w in key for w in SECRET_WORDS) else line)
    return lines


def _text_diff(path: str, live: bytes, new: bytes) -> list[str]:
    if path.endswith(BINARY_SUFFIXES):
        return [f"binary file: {len(live)} -> {len(new)} bytes"]
    old_lines, new_lines = live.decode(errors="replace"), new.decode(errors="replace")
    if path == ".env":
        a, b = _mask_env(old_lines), _mask_env(new_lines)
        if a == b:
            return ["a secret value changed"]
    elif "secrets/" in path:
        return ["secret file changed"]
    else:
        a, b = old_lines.splitlines(), new_lines.splitlines()
    return list(difflib.unified_diff(a, b, f"live/{path}", f"new/{path}", lineterm="", n=2))[:200]


def plan(app: App, name: str) -> Plan:
    rendered = render_server(app, name)
    server = rendered.server
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        live = host.live_release()
        listing = ssh.run(
            ["find", "-L", f"{RUNTIME_DIR}/", "-type", "f", "-exec", "sha256sum", "{}", "+"], sudo=True,
            check=False, timeout=120,
        )  # fmt: skip
        live_sums: dict[str, str] = {}
        if live is not None:
            if not listing.ok:
                raise OvpnError(
                    f"cannot list {RUNTIME_DIR} on {name}: {listing.error_text}", "see `ovpn doctor`"
                )
            for line in listing.text.splitlines():
                digest, _, path = line.partition("  ")
                live_sums[path.removeprefix(f"{RUNTIME_DIR}/")] = digest
        live_sums.pop(RELEASE_MARKER, None)
        changes: list[FileChange] = []
        for path, f in rendered.bundle.items():
            digest = hashlib.sha256(f.content).hexdigest()
            if path not in live_sums:
                changes.append(FileChange(path, "added"))
            elif live_sums[path] != digest and not (path in KEPT_ON_HOST and not f.content):
                current = ssh.run(["cat", f"{RUNTIME_DIR}/{path}"], sudo=True, timeout=60).stdout
                changes.append(FileChange(path, "changed", _text_diff(path, current, f.content)))
        for path in sorted(set(live_sums) - set(rendered.bundle)):
            changes.append(FileChange(path, "removed"))
    return Plan(name, live.revision if live else None, sorted(changes, key=lambda c: c.path))
