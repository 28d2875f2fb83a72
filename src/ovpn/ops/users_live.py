"""Apply user changes live on every deployed server, without restarting Xray.

For each server that has been deployed (a successful revision in the state), in parallel:

1. render its bundle from the new state and write the new `xray/config.json` into the live release (atomically,
   same mode and group; Xray reads it only at its next start, so nothing restarts now). When the host ran
   exactly the previous render apart from that file, the release marker takes the new bundle hash, so the next
   `deploy` sees nothing to do;
2. send the whole user policy to the host's agent (`POST /users/sync`), which adds and removes users at runtime
   through Xray's API, and honours quota blocks and expiry; `quota-reset` also calls `POST /quota/reset`.

The agent is reached with `docker exec` over SSH (ovpn.ops.agent_client): the request body (user ids) goes
on stdin and the token never leaves the host (the script reads it from the agent's own environment). If the live
path fails on a host, that host gets a full deploy instead, and the outcome says so; a host that another
operation holds (`ovpn.ops.locks`) is left to the next deploy, not deployed behind that operation's back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from ovpn.core.model import Server, User
from ovpn.core.names import RELEASE_MARKER, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.facts.release import LiveRelease
from ovpn.ops.agent_client import agent_path, agent_request, sync_policy
from ovpn.ops.app import App
from ovpn.ops.deploy import DeployOptions, deploy
from ovpn.ops.host import Host, connect, locked
from ovpn.ops.locks import OperationLocked, local_locks
from ovpn.ops.render import render_server
from ovpn.render.bundle import BundleFile, bundle_digest

Progress = Callable[[str], None]
CONFIG = "xray/config.json"
MAX_PARALLEL = 8


@dataclass(frozen=True)
class LiveOutcome:
    server: str
    result: Literal["live", "deployed", "skipped", "busy", "failed"]
    message: str

    def as_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def persist_config(host: Host, bundle: dict[str, BundleFile], live: LiveRelease) -> bool:
    """Write the new config.json into the live release; True when the release marker could follow."""
    new = bundle[CONFIG]
    current = host.ssh.run(["cat", f"{RUNTIME_DIR}/{CONFIG}"], sudo=True, timeout=30)
    previous = {**bundle, CONFIG: dataclasses.replace(new, content=current.stdout)}
    in_step = bundle_digest(previous) == live.bundle_sha256
    script = (
        'set -e; dir=$(readlink -f "$1"); tmp="$dir/$2.ovpn-tmp"; cat > "$tmp"; '
        'chmod "$3" "$tmp"; chgrp "$4" "$tmp"; mv -f "$tmp" "$dir/$2"'
    )
    host.ssh.run(["sh", "-c", script, "sh", RUNTIME_DIR, CONFIG, f"{new.mode:o}", str(new.group or 0)],
                 sudo=True, input=new.content, timeout=60)  # fmt: skip
    if in_step:
        marker = host.ssh.run(["cat", f"{RUNTIME_DIR}/{RELEASE_MARKER}"], sudo=True, timeout=30).text
        document = json.loads(marker)
        document["bundle_sha256"] = bundle_digest(bundle)
        host.ssh.run(["sh", "-c", script, "sh", RUNTIME_DIR, RELEASE_MARKER, "644", "0"], sudo=True,
                     input=(json.dumps(document, indent=2) + "\n").encode(), timeout=60)  # fmt: skip
    return in_step


def _live(app: App, server: Server, users: list[User], reset_email: str | None) -> LiveOutcome:
    rendered = render_server(app, server.name)
    with locked(app, server, "user change") as ssh:
        host = Host(ssh, server)
        live = host.live_release()
        if live is None:
            return LiveOutcome(server.name, "skipped", "not deployed: the next deploy carries the change")
        in_step = persist_config(host, rendered.bundle, live)
        reply = sync_policy(host, users)
        enforcement: dict[str, Any] = dict(reply.get("enforcement") or {})
        errors = [*list(reply.get("errors") or []), *enforcement.get("errors", [])]
        if errors:
            raise OvpnError(f"the agent on {server.name} could not apply every change: {'; '.join(map(str, errors))}",
                            "a deploy applies them")  # fmt: skip
        if reset_email is not None:
            agent_request(host, "POST", "/quota/reset", {"email": reset_email})
    added, removed = enforcement.get("runtime_added") or [], enforcement.get("runtime_removed") or []
    parts = [f"added {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else ""]
    summary = "; ".join(p for p in parts if p) or "runtime already matched"
    if not in_step:
        summary += (
            "; config.json persisted, but the host also has other undeployed changes: run `ovpn deploy`"
        )
    return LiveOutcome(server.name, "live", summary)


def _apply_one(
    app: App, server: Server, users: list[User], reset_email: str | None, progress: Progress
) -> LiveOutcome:
    try:
        return _live(app, server, users, reset_email)
    except OperationLocked as e:
        return LiveOutcome(server.name, "busy", f"{e.message}: the change reaches it with the next deploy")
    except OvpnError as e:
        progress(f"{server.name}: the live change failed ({e.message}); deploying instead")
        try:
            # Forced: the live path may already have persisted config.json (and the release marker), yet the
            # runtime is not in line with it; a forced deploy recreates the services from the release.
            options = DeployOptions(force=True)
            outcome = deploy(app, server.name, options, lambda line: progress(f"{server.name}: {line}"))
        except OvpnError as deploy_error:
            return LiveOutcome(
                server.name, "failed", f"live path: {e.message}; deploy: {deploy_error.message}"
            )
        return LiveOutcome(
            server.name, "deployed", f"live path failed ({e.message}); deployed {outcome.revision}"
        )


def deployed_servers(app: App) -> list[Server]:
    with app.reading() as repo:
        return [
            s for s in repo.servers() if any(r.result in ("ok", "unchanged") for r in repo.revisions(s.name))
        ]


APPLY_ENV = "OVPN_APPLY_USER_CHANGES"


def live_enabled(env: Mapping[str, str]) -> bool:
    """`OVPN_APPLY_USER_CHANGES=no` keeps user changes in the state until the next deploy (no SSH at all)."""
    return env.get(APPLY_ENV, "yes").strip().lower() not in ("no", "0", "false", "off")


def user_change_lock(app: App, operation: str) -> contextlib.AbstractContextManager[None]:
    """The local locks of every server a user change goes live on (none when changes wait for a deploy)."""
    if not live_enabled(app.env):
        return contextlib.nullcontext()
    with app.reading() as repo:
        names = repo.deployed_names()
    return local_locks(app.data_dir, names, operation)


def apply_users_live(app: App, progress: Progress, *, reset_email: str | None = None) -> list[LiveOutcome]:
    """Bring every deployed server's runtime and config.json in line with the users in the state."""
    if not live_enabled(app.env):
        return []
    servers = deployed_servers(app)
    if not servers:
        return []
    with app.reading() as repo:
        users = repo.users()
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(servers))) as pool:
        futures = [pool.submit(_apply_one, app, s, users, reset_email, progress) for s in servers]
        return [f.result() for f in futures]


def server_stats(app: App, name: str, email: str | None = None) -> dict[str, Any]:
    """Usage and state per user on one server, as its agent counts them."""
    with app.reading() as repo:
        server = repo.server(name)
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        users = agent_request(host, "GET", agent_path("/users/status", email=email))
        totals = agent_request(host, "GET", "/stats/total")
    traffic = {row["email"]: row for row in totals}
    rows = []
    for user in users["users"]:
        counted = traffic.get(user["email"], {})
        rows.append({**user, "uplink_bytes": counted.get("uplink_bytes", 0),
                     "downlink_bytes": counted.get("downlink_bytes", 0)})  # fmt: skip
    return {"server": name, "time": users["time"], "users": rows}
