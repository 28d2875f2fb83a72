"""`server restore`: a backup, on the host or in a local file, back as the live release.

A restore trusts the local record, not the host: the archive must match the digest recorded when it was taken
(or one the operator passes), name the target server in its manifest, and hold nothing but plain files,
directories and links that stay inside (`backup_archive`). A local file is checked here first (`backup_local`),
uploaded to the host's backups folder, and checked there again like any host archive. Only then does the restore
install `runtime/` as a new release, put the agent's data back, switch, and run the same health gate as a
deploy: if the restored release does not come up, the previous one is switched back.

The new revision (`<UTC time>-restored`) is one name everywhere: the release directory, the release marker (the
archive's copy still names the revision it was taken from, so it is rewritten) and the local record.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

from ovpn.core.names import BACKUP_DIR, RELEASE_MARKER, RELEASES_DIR, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.backup import host_archive, recorded_digests, require_archive, volume_dir
from ovpn.ops.backup_archive import (
    ARCHIVE_NAME,
    DIGEST,
    MANIFEST_NAME,
    Member,
    check_members,
    check_origin,
    listing_argv,
    parse_listing,
    parse_manifest,
)
from ovpn.ops.backup_local import LocalArchive, check_local_archive, local_source
from ovpn.ops.deploy import Progress, health_gate, rollback, start, switch
from ovpn.ops.host import Host, locked
from ovpn.remote.base import Remote


def restore(app: App, name: str, source: str, progress: Progress, gate_timeout: int = 90, *,
            digest: str | None = None, trust_host_digest: bool = False) -> str:  # fmt: skip
    """Restore `source`: an archive's name (or full path) in /opt/ovpn-backups on the host, or a local file (one
    that exists here, or any other path). Returns the new revision.

    The archive must match the digest this state recorded when it was taken. One taken elsewhere needs `digest`
    (kept by the operator), a `.sha256` file beside a local file, or for a host archive `trust_host_digest`
    (accept the `.sha256` beside it on the host)."""
    if digest is not None:
        digest = digest.lower()
        if not DIGEST.match(digest):
            raise OvpnError(
                f"invalid --digest {digest[:80]!r}", "give the archive's SHA-256 as 64 hex digits"
            )
        if trust_host_digest:
            raise OvpnError("--digest and --trust-host-digest exclude each other", "pass one of them")
    local = local_source(source)
    if local is not None and trust_host_digest:
        raise OvpnError(f"--trust-host-digest is for archives on the host, not for the local file {source}",
                        "pass --digest SHA256, or keep the .sha256 file that --download wrote beside it")  # fmt: skip
    with app.reading() as repo:
        server = repo.server(name)
        pool_nonempty = bool(repo.attachments(name)) if server.is_proxy else False
    archive = f"{BACKUP_DIR}/{local.name}" if local is not None else host_archive(source)
    recorded = recorded_digests(app, name).get(archive)
    copy = None
    if local is not None:
        copy = check_local_archive(local, name, server.role, recorded, digest)
        digest = copy.sha256
    revision = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-restored"
    with locked(app, server, "restore") as ssh:
        host = Host(ssh, server)
        if copy is not None:
            _upload(ssh, name, archive, copy, progress)
        else:
            _check_host_archive(
                ssh, name, archive, recorded is not None or digest is not None or trust_host_digest
            )
        progress(f"verifying {archive}")
        given = (f"your copy {copy.path}" if copy else "--digest", digest)
        _verify_digest(ssh, archive, recorded, given, trust_host_digest)
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
        _name_release(ssh, work, archive, revision)
        release = f"{RELEASES_DIR}/{revision}"
        ssh.run(["mv", "-T", f"{work}/runtime", release], sudo=True, timeout=60)
        progress("restoring the agent's data")
        volume = volume_dir(host)
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
                name,
                revision,
                restored.bundle_sha256 if restored else "",
                getpass.getuser(),
                kind="restore",
                changes=f"from {archive.rsplit('/', 1)[1]}",
            )
            repo.finish_revision(revision_id, "ok" if gate.ok else "rolled-back", f"restored from {archive}")
        if not gate.ok:
            how = rollback(host, previous, "never", monitoring)
            raise OvpnError(f"the restored release of {name} failed the health gate: {gate.failures()}; {how}",
                            "the host is serving its previous release")  # fmt: skip
    return revision


def _check_host_archive(ssh: Remote, server: str, archive: str, vouched: bool) -> None:
    """In this order: the archive is there, it is named like an ovpn backup, something vouches for its digest."""
    require_archive(ssh, server, archive)
    if not ARCHIVE_NAME.match(archive.rsplit("/", 1)[1]):
        raise OvpnError(f"{archive} is not an ovpn backup archive",
                        f"see the archives with `ovpn server backup list {server}`")  # fmt: skip
    if not vouched:
        raise OvpnError(
            f"this state has no record of {archive} being taken from {server}",
            "restore an archive `ovpn server backup` made from this state; for one taken elsewhere pass "
            "--digest SHA256 (as kept when it was taken) or, trusting the host, --trust-host-digest",
        )


def _upload(ssh: Remote, server: str, archive: str, copy: LocalArchive, progress: Progress) -> None:
    """Put the checked local archive into the host's backups folder, unless the host already holds it; another
    file under its name is never replaced."""
    present = ssh.run(["sha256sum", archive], sudo=True, check=False, timeout=300)
    if present.ok and present.text.split():
        if present.text.split()[0] == copy.sha256:
            progress(f"{server} already holds {archive}")
            return
        raise OvpnError(f"{server} holds another {archive}: refusing to replace it with {copy.path}",
                        "restore the host's archive by its name, or move it aside on the host first")  # fmt: skip
    progress(f"uploading {len(copy.data) // 1024} KiB to {archive}")
    ssh.run(["mkdir", "-p", BACKUP_DIR], sudo=True, timeout=30)
    ssh.write_file(archive, copy.data, mode=0o600, timeout=900)
    ssh.write_file(f"{archive}.sha256", f"{copy.sha256}  {copy.path.name}\n".encode(), mode=0o600)


def renamed_marker(text: str, revision: str) -> bytes | None:
    """The release marker under the restore's revision, remembering the one it was taken from; None when the
    archive's marker is unreadable."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("revision"), str):
        return None
    doc.update(revision=revision, restored_from=doc["revision"])
    return (json.dumps(doc, indent=2) + "\n").encode()


def _name_release(ssh: Remote, work: str, archive: str, revision: str) -> None:
    marker_path = f"{work}/runtime/{RELEASE_MARKER}"
    marker = renamed_marker(ssh.run(["cat", marker_path], sudo=True, check=False, timeout=30).text, revision)
    if marker is None:
        ssh.run(["rm", "-rf", work], sudo=True, timeout=120)
        raise OvpnError(f"the release marker in {archive} is unreadable", "use another backup")
    ssh.write_file(marker_path, marker, mode=0o644)


def _verify_digest(
    ssh: Remote, archive: str, recorded: str | None, given: tuple[str, str | None], trust_host: bool
) -> None:
    """The archive's SHA-256 on the host against every digest there is to trust: the local record, `--digest`
    (or the uploaded local copy's, `given` says which), and with `--trust-host-digest` the `.sha256` beside it. Without that flag the
    `.sha256` is not read: whoever could replace the archive could replace it too."""
    actual = ssh.run(["sha256sum", archive], sudo=True, check=False, timeout=300)
    if not actual.ok or not actual.text.split():
        raise OvpnError(f"{archive} is missing on {ssh.target.host}", f"see the archives in {BACKUP_DIR}")
    expected = [("the digest recorded when it was taken", recorded), given]
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
    check_members(archive, members)
    return members
