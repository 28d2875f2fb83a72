"""`ovpn deploy history` and `ovpn rollback`: the record of every change of a server's live release, and the way
back to a release still kept on the host.

A rollback goes through the same steps as a deploy (switch, start, health gate, switch back when the gate fails)
and is recorded the same way, as a revision of kind `rollback` under the name of the release it brings back: one
name per release, on the host and in the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from ovpn.errors import InvalidInput, OvpnError
from ovpn.facts.base import gather
from ovpn.facts.release import LiveRelease, kept_releases
from ovpn.ops.app import App
from ovpn.ops.deploy import Attempt, DeployOptions, DeployOutcome, Progress, go_live, recorded
from ovpn.ops.host import Host, locked
from ovpn.ops.render import render_server
from ovpn.render.bundle import bundle_digest
from ovpn.state.repo import Revision

GOOD_RESULTS = ("ok", "unchanged")


def history(app: App, name: str, limit: int) -> list[Revision]:
    """The newest `limit` records of a server's deploys, rollbacks and restores, newest first."""
    if limit < 1:
        raise InvalidInput(f"invalid --limit {limit}", "give a positive number of revisions")
    with app.reading() as repo:
        repo.server(name)
        return repo.revisions(name, limit)


def rollback_target(
    server: str, kept: Sequence[LiveRelease], live: LiveRelease, records: Sequence[Revision], to: str | None
) -> LiveRelease:
    """The kept release to go back to: the one named by `to` (its revision or directory name), else the newest
    release older than the live one that the history records as good (any older one when none is recorded)."""
    if to is not None:
        target = next((r for r in kept if to in (r.revision, PurePosixPath(r.directory).name)), None)
        if target is None:
            listing = ", ".join(r.revision for r in reversed(kept)) or "none"
            raise InvalidInput(
                f"{to} is not kept on {server}", f"releases kept there, newest first: {listing}"
            )
        if target.directory == live.directory:
            raise InvalidInput(f"{to} is already live on {server}", f"see `ovpn deploy history {server}`")
        return target
    older = [r for r in kept if r.directory < live.directory]
    good = {r.revision for r in records if r.result in GOOD_RESULTS}
    target = next((r for r in reversed(older) if r.revision in good), None) or (older[-1] if older else None)
    if target is None:
        raise InvalidInput(
            f"no release older than {live.revision} is kept on {server}",
            f"see `ovpn deploy history {server}`; `--to REVISION` names a newer kept one",
        )
    return target


def roll_back(
    app: App, name: str, to: str | None, options: DeployOptions, progress: Progress
) -> DeployOutcome:
    with app.reading() as repo:
        server = repo.server(name)
        records = repo.revisions(name, 200)
        pool = [m.server.name for m in repo.pool(name)] if server.is_proxy else []
    with locked(app, server, "rollback", accept_new_host_key=options.accept_new_host_key) as ssh:
        host = Host(ssh, server)
        live = host.live_release()
        if live is None:
            raise OvpnError(
                f"nothing is live on {name}: there is nothing to roll back", f"ovpn deploy {name}"
            )
        kept: list[LiveRelease] = gather(ssh, kept_releases())
        target = rollback_target(name, kept, live, records, to)
        progress(f"rolling back from {live.revision} to {target.revision}")
        attempt = Attempt("rollback", target.revision, target.bundle_sha256, live, f"from {live.revision}")

        def run() -> DeployOutcome:
            return go_live(host, target.directory, attempt, pool, options, progress)

        outcome = recorded(app, host, attempt, run, progress)
    if bundle_digest(render_server(app, name).bundle) != target.bundle_sha256:
        outcome.warnings.append(
            f"{target.revision} is not what the state renders now (users or settings changed since): the next "
            f"`ovpn deploy {name}` brings the host back in line"
        )
    return outcome
