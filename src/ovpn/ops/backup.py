"""`server backup` / `server restore`: the live release and the agent's data, in one checksummed archive.

The archive (`/opt/ovpn-backups/<server>-<UTC time>.tar.gz`) holds `ovpn-backup.json` (which server it was
taken from), `runtime/` (the files of the live release) and `agent-data/` (the agent's volume, copied while the
agent is paused so its SQLite is consistent), with a `.sha256` file beside it; its digest is also recorded in the
local state. The newest `keep` archives are kept.

A restore trusts the local record, not the host: the archive must match the digest recorded when it was taken
(or one the operator passes), name the target server in its manifest, and hold nothing but plain files,
directories and links that stay inside (`backup_archive`). Only then does it install `runtime/` as a new
release, put the agent's data back, switch, and run the same health gate as a deploy: if the restored release
does not come up, the previous one is switched back.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ovpn.core.names import BACKUP_DIR, RELEASES_DIR, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.backup_archive import (
    MANIFEST_NAME,
    Manifest,
    Member,
    check_origin,
    has_release,
    listing_argv,
    member_problems,
    parse_listing,
    parse_manifest,
)
from ovpn.ops.deploy import Progress, health_gate, rollback, start, switch
from ovpn.ops.host import Host, locked
from ovpn.remote.base import Remote
from ovpn.render.compose import AGENT_DATA_VOLUME

KEEP_BACKUPS = 7
_ARCHIVE_RE = re.compile(r"^[a-z0-9-]+-\d{8}T\d{6}Z\.tar\.gz$")
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BackupResult:
    server: str
    remote_path: str
    sha256: str
    size_bytes: int


def _volume_dir(host: Host) -> str:
    result = host.ssh.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", AGENT_DATA_VOLUME],
                          sudo=True, check=False, timeout=30)  # fmt: skip
    if not result.ok:
        raise OvpnError(
            f"{host.server.name} has no agent data volume", f"deploy it first: ovpn deploy {host.server.name}"
        )
    return result.text.strip()


def backup(app: App, name: str, keep: int, progress: Progress) -> BackupResult:
    if keep < 1:
        raise OvpnError(f"invalid --keep {keep}", "keep at least one backup")
    with app.reading() as repo:
        server = repo.server(name)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    archive = f"{BACKUP_DIR}/{name}-{stamp}.tar.gz"
    with locked(app, server, "backup") as ssh:
        host = Host(ssh, server)
        live = host.live_release()
        if live is None:
            raise OvpnError(f"{name} has no live release to back up", f"ovpn server init {name}")
        volume = _volume_dir(host)
        staging = f"{BACKUP_DIR}/.{name}-{stamp}"
        progress(f"copying the live release and the agent's data on {name}")
        ssh.run(["mkdir", "-p", f"{staging}/runtime", f"{staging}/agent-data"], sudo=True, timeout=30)
        manifest = Manifest(name, server.role, now.isoformat(timespec="seconds"), live.revision)
        ssh.write_file(f"{staging}/{MANIFEST_NAME}", manifest.to_json(), mode=0o600)
        ssh.run(["cp", "-a", f"{RUNTIME_DIR}/.", f"{staging}/runtime/"], sudo=True, timeout=600)
        paused = ssh.run(host.compose(["pause", "ovpn-agent"]), sudo=True, check=False, timeout=60).ok
        try:
            ssh.run(["cp", "-a", f"{volume}/.", f"{staging}/agent-data/"], sudo=True, timeout=600)
        finally:
            if paused:
                ssh.run(host.compose(["unpause", "ovpn-agent"]), sudo=True, check=False, timeout=60)
        result = ssh.run(["tar", "-C", staging, "-czf", archive, MANIFEST_NAME, "runtime", "agent-data"],
                         sudo=True, check=False, timeout=900)  # fmt: skip
        ssh.run(["rm", "-rf", staging], sudo=True, timeout=120)
        if not result.ok:
            ssh.run(["rm", "-f", archive], sudo=True, check=False, timeout=30)
            full = "No space left" in result.error_text
            raise OvpnError(f"the backup on {name} failed: {result.error_text[-200:]}",
                            f"free space under {BACKUP_DIR}" if full else "see `ovpn doctor`")  # fmt: skip
        digest = ssh.run(["sha256sum", archive], sudo=True, timeout=300).text.split()[0]
        ssh.write_file(f"{archive}.sha256", f"{digest}  {archive.rsplit('/', 1)[1]}\n".encode(), mode=0o600)
        size = int(ssh.run(["stat", "-c", "%s", archive], sudo=True, timeout=30).text.strip())
        prune = (
            'ls -1t "$1"/"$2"-*.tar.gz 2>/dev/null | tail -n +$(( $3 + 1 )) | '
            'while read -r f; do rm -f -- "$f" "$f.sha256"; done'
        )
        ssh.run(["sh", "-c", prune, "sh", BACKUP_DIR, name, str(keep)], sudo=True, timeout=120)
    with app.writing() as repo:
        repo.add_backup(name, archive, digest, size, getpass.getuser())
    return BackupResult(name, archive, digest, size)


def restore(app: App, name: str, source: str, progress: Progress, gate_timeout: int = 90, *,
            digest: str | None = None, trust_host_digest: bool = False) -> str:  # fmt: skip
    """Restore `source` (a file name in /opt/ovpn-backups, or its full path); returns the new revision.

    The archive must match the digest this state recorded when it was taken. One taken elsewhere needs `digest`
    (kept by the operator) or `trust_host_digest` (accept the `.sha256` beside it on the host)."""
    file_name = source.rsplit("/", 1)[-1]
    if not _ARCHIVE_RE.match(file_name) or (
        source.startswith("/") and not source.startswith(f"{BACKUP_DIR}/")
    ):
        raise OvpnError(
            f"{source!r} is not an ovpn backup archive", f"see the archives in {BACKUP_DIR} on the host"
        )
    archive = f"{BACKUP_DIR}/{file_name}"
    if digest is not None:
        digest = digest.lower()
        if not _DIGEST_RE.match(digest):
            raise OvpnError(
                f"invalid --digest {digest[:80]!r}", "give the archive's SHA-256 as 64 hex digits"
            )
        if trust_host_digest:
            raise OvpnError("--digest and --trust-host-digest exclude each other", "pass one of them")
    with app.reading() as repo:
        server = repo.server(name)
        pool_nonempty = bool(repo.attachments(name)) if server.is_proxy else False
        recorded = next((str(b["sha256"]) for b in repo.backups(name) if b["remote_path"] == archive), None)
    if recorded is None and digest is None and not trust_host_digest:
        raise OvpnError(
            f"this state has no record of {archive} being taken from {name}",
            "restore an archive `ovpn server backup` made from this state; for one taken elsewhere pass "
            "--digest SHA256 (as kept when it was taken) or, trusting the host, --trust-host-digest",
        )
    revision = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-restored"
    with locked(app, server, "restore") as ssh:
        host = Host(ssh, server)
        progress(f"verifying {archive}")
        _verify_digest(ssh, archive, recorded, digest, trust_host_digest)
        members = _checked_members(ssh, archive)
        manifest = None
        if any(m.name == MANIFEST_NAME for m in members):
            read = ssh.run(["tar", "-xzOf", archive, "--occurrence=1", MANIFEST_NAME], sudo=True, timeout=300)
            manifest = parse_manifest(read.text)
        check_origin(manifest, name, server.role, recorded=recorded is not None)
        previous = host.live_release()
        work = f"{RELEASES_DIR}/{revision}.partial"
        ssh.run(["mkdir", "-p", work], sudo=True, timeout=30)
        # Owners and modes are kept on purpose: the agent's data belongs to its user in the container and the
        # release's secrets are 0600. The listing check has refused setuid/setgid bits and special files.
        extracted = ssh.run(["tar", "-C", work, "-xzf", archive, "--numeric-owner", "--same-owner",
                             "--same-permissions", "--keep-old-files"], sudo=True, check=False, timeout=900)  # fmt: skip
        if not extracted.ok:
            ssh.run(["rm", "-rf", work], sudo=True, timeout=120)
            raise OvpnError(f"extracting {archive} on {name} failed: {extracted.error_text[-200:]}",
                            f"free space under {RELEASES_DIR} or use another backup")  # fmt: skip
        release = f"{RELEASES_DIR}/{revision}"
        ssh.run(["mv", "-T", f"{work}/runtime", release], sudo=True, timeout=60)
        progress("restoring the agent's data")
        volume = _volume_dir(host)
        ssh.run(host.compose(["stop", "ovpn-agent"]), sudo=True, check=False, timeout=120)
        script = 'find "$1" -mindepth 1 -delete && cp -a "$2"/. "$1"/'
        ssh.run(["sh", "-c", script, "sh", volume, f"{work}/agent-data"], sudo=True, timeout=600)
        ssh.run(["rm", "-rf", work], sudo=True, timeout=120)
        progress(f"switching {RUNTIME_DIR} to {revision}")
        switch(host, release)
        monitoring = host.monitoring_running()
        progress("starting services (docker compose up)")
        start(host, "never", monitoring)
        progress("health gate")
        gate = health_gate(host, pool_nonempty, gate_timeout, progress)
        restored = host.live_release()
        with app.writing() as repo:
            revision_id = repo.start_revision(
                name, revision, restored.bundle_sha256 if restored else "", getpass.getuser()
            )
            repo.finish_revision(revision_id, "ok" if gate.ok else "rolled-back", f"restored from {archive}")
        if not gate.ok:
            how = rollback(host, previous, "never", monitoring)
            raise OvpnError(f"the restored release of {name} failed the health gate: {gate.failures()}; {how}",
                            "the host is serving its previous release")  # fmt: skip
    return revision


def _verify_digest(
    ssh: Remote, archive: str, recorded: str | None, given: str | None, trust_host: bool
) -> None:
    """The archive's SHA-256 on the host against every digest there is to trust: the local record, `--digest`,
    and with `--trust-host-digest` the `.sha256` beside it. Without that flag the `.sha256` is not read: whoever
    could replace the archive could replace it too."""
    actual = ssh.run(["sha256sum", archive], sudo=True, check=False, timeout=300)
    if not actual.ok or not actual.text.split():
        raise OvpnError(f"{archive} is missing on {ssh.target.host}", f"see the archives in {BACKUP_DIR}")
    expected = [("the digest recorded when it was taken", recorded), ("--digest", given)]
    if trust_host:
        side = ssh.run(["cat", f"{archive}.sha256"], sudo=True, check=False, timeout=30)
        if not side.ok or not side.text.split():
            raise OvpnError(f"{archive}.sha256 is missing", "pass the archive's digest with --digest instead")
        expected.append((f"{archive}.sha256", side.text.split()[0].lower()))
    for what, value in expected:
        if value is not None and value != actual.text.split()[0]:
            raise OvpnError(f"{archive} does not match {what}: refusing to restore it",
                            "the archive was changed or replaced on the host; use another backup")  # fmt: skip


def _checked_members(ssh: Remote, archive: str) -> list[Member]:
    listing = ssh.run(listing_argv(archive), sudo=True, check=False, timeout=300)
    if not listing.ok:
        raise OvpnError(
            f"{archive} is not a readable archive: {listing.error_text[-200:]}", "use another backup"
        )
    members = parse_listing(listing.text)
    problems = member_problems(members)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise OvpnError(f"{archive} holds entries ovpn will not restore: {'; '.join(problems[:3])}{more}",
                        "it was not made by `ovpn server backup` or was altered since; use another backup")  # fmt: skip
    if not has_release(members):
        raise OvpnError(f"{archive} holds no ovpn release", "use an archive made by `ovpn server backup`")
    return members
