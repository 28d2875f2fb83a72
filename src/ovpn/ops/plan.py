"""`ovpn deploy --plan`: what a deploy would change on the host, file by file, touching nothing.

Diffs show secrets only when asked (`reveal`): otherwise ovpn.ops.redact masks them on both sides first, so the
diff still tells that a key or a UUID changed, and which one, without printing it.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from ovpn.core.names import KEPT_ON_HOST, RELEASE_MARKER, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.host import Host, connect
from ovpn.ops.redact import Redactor
from ovpn.ops.render import render_server
from ovpn.render.bundle import Bundle

BINARY_SUFFIXES = (".dat", ".whl")
# Files a deploy keeps from the live release when the bundle ships them empty.


@dataclass
class FileChange:
    path: str
    change: Literal["added", "changed", "removed"]
    diff: list[str] = field(default_factory=list)


@dataclass
class Plan:
    server: str
    live_revision: str | None
    changes: list[FileChange]

    @property
    def empty(self) -> bool:
        return not self.changes


def _masked_lines(path: str, text: str, redactor: Redactor) -> list[str] | None:
    """The lines of a file as a plan may print them; None when they cannot be shown safely."""
    if path == ".env":
        return redactor.env_lines(text)
    if path.endswith(".json"):
        masked = redactor.json_text(text)
        return None if masked is None else masked.splitlines()
    return text.splitlines()


def _text_diff(path: str, live: bytes, new: bytes, redactor: Redactor | None) -> list[str]:
    """A unified diff of one file; with a redactor (unless `--reveal-secrets`), one without its secrets."""
    if path.endswith(BINARY_SUFFIXES):
        return [f"binary file: {len(live)} -> {len(new)} bytes"]
    old_text, new_text = live.decode(errors="replace"), new.decode(errors="replace")
    if redactor is None:
        a, b = old_text.splitlines(), new_text.splitlines()
    elif "secrets/" in path:
        return ["secret file changed"]
    else:
        # The new side first: its secrets are known to be well-formed, and a live copy of one is then caught too.
        masked_new = _masked_lines(path, new_text, redactor)
        masked_old = _masked_lines(path, old_text, redactor)
        if masked_old is None or masked_new is None:
            return ["not valid JSON on the host: diff withheld (it may hold secrets; see --reveal-secrets)"]
        a, b = masked_old, masked_new
    lines = list(difflib.unified_diff(a, b, f"live/{path}", f"new/{path}", lineterm="", n=2))[:200]
    if redactor is not None:
        lines = [redactor.scrub(line) for line in lines]
    return lines or ["differs only in whitespace or layout"]


def _learn_secrets(bundle: Bundle, redactor: Redactor) -> None:
    """Show the redactor every secret of the new bundle, so a copy of one in any other file is masked too."""
    for path, f in bundle.items():
        text = f.content.decode(errors="replace")
        if "secrets/" in path and text.strip():
            redactor.placeholder(text.strip())
        elif path == ".env" or path.endswith(".json"):
            _masked_lines(path, text, redactor)


def plan(app: App, name: str, *, accept_new_host_key: bool = False, reveal_secrets: bool = False) -> Plan:
    rendered = render_server(app, name)
    server = rendered.server
    redactor = None if reveal_secrets else Redactor()
    if redactor is not None:
        _learn_secrets(rendered.bundle, redactor)
    with connect(app, server, accept_new_host_key=accept_new_host_key) as ssh:
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
                changes.append(FileChange(path, "changed", _text_diff(path, current, f.content, redactor)))
        for path in sorted(set(live_sums) - set(rendered.bundle)):
            changes.append(FileChange(path, "removed"))
    return Plan(name, live.revision if live else None, sorted(changes, key=lambda c: c.path))
