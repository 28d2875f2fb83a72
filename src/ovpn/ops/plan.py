"""`ovpn deploy --plan`: what a deploy would change on the host, file by file, touching nothing.

Diffs show secrets only when asked (`reveal`): otherwise ovpn.ops.redact masks them on both sides first, so the
diff still tells that a key or a UUID changed, and which one, without printing it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ovpn.core.names import KEPT_ON_HOST, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.facts.base import gather
from ovpn.facts.release import file_digests
from ovpn.ops.app import App
from ovpn.ops.deploy import check_backends
from ovpn.ops.host import Host, connect
from ovpn.ops.redact import Redactor
from ovpn.ops.render import render_server
from ovpn.render.bundle import Bundle, FileChangeKind, bundle_changes

BINARY_SUFFIXES = (".dat", ".whl")
# Files a deploy keeps from the live release when the bundle ships them empty.


@dataclass
class FileChange:
    path: str
    change: FileChangeKind
    diff: list[str] = field(default_factory=list)


@dataclass
class Plan:
    server: str
    live_revision: str | None
    changes: list[FileChange]
    # A proxy's backends whose live config would leave them DOWN (or refuse the deploy), from check_backends.
    warnings: list[str] = field(default_factory=list)

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
    warnings: list[str] = []
    if server.is_proxy:
        with app.reading() as repo:
            pool = [m.server for m in repo.pool(name)]
        report = check_backends(app, server, pool, accept_new_host_key)
        warnings = [*(f"the deploy would be refused: {p}" for p in report.problems), *report.warnings]
    redactor = None if reveal_secrets else Redactor()
    if redactor is not None:
        _learn_secrets(rendered.bundle, redactor)
    with connect(app, server, accept_new_host_key=accept_new_host_key) as ssh:
        host = Host(ssh, server)
        live = host.live_release()
        live_sums = gather(ssh, file_digests()) if live is not None else {}
        if live_sums is None:
            raise OvpnError(f"cannot list {RUNTIME_DIR} on {name}", "see `ovpn doctor`")
        changes: list[FileChange] = []
        for path, kind in bundle_changes(live_sums, rendered.bundle, KEPT_ON_HOST):
            diff: list[str] = []
            if kind == "changed":
                current = ssh.run(["cat", f"{RUNTIME_DIR}/{path}"], sudo=True, timeout=60).stdout
                diff = _text_diff(path, current, rendered.bundle[path].content, redactor)
            changes.append(FileChange(path, kind, diff))
    return Plan(name, live.revision if live else None, changes, warnings)
