"""`server backup` / `server restore`: the live release and the agent's data, in one checksummed archive.

The archive (`/opt/ovpn-backups/<server>-<UTC time>.tar.gz`) holds `runtime/` (the files of the live release)
and `agent-data/` (the agent's volume, copied while the agent is paused so its SQLite is consistent), with a
`.sha256` file beside it. The newest `keep` archives are kept. A restore verifies the checksum, installs
`runtime/` as a new release, puts the agent's data back, switches, and runs the same health gate as a deploy:
if the restored release does not come up, the previous one is switched back.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.deploy import Progress, health_gate, rollback, start, switch
from ovpn.ops.host import BACKUP_DIR, RELEASE_MARKER, RELEASES_DIR, RUNTIME_DIR, Host, connect
from ovpn.render.compose import AGENT_DATA_VOLUME

KEEP_BACKUPS = 7
_ARCHIVE_RE = re.compile(r"^[a-z0-9-]+-\d{8}T\d{6}Z\.tar\.gz$")


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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = f"{BACKUP_DIR}/{name}-{stamp}.tar.gz"
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        if host.live_release() is None:
            raise OvpnError(f"{name} has no live release to back up", f"ovpn server init {name}")
        volume = _volume_dir(host)
        staging = f"{BACKUP_DIR}/.{name}-{stamp}"
        progress(f"copying the live release and the agent's data on {name}")
        ssh.run(["mkdir", "-p", f"{staging}/runtime", f"{staging}/agent-data"], sudo=True, timeout=30)
        ssh.run(["cp", "-a", f"{RUNTIME_DIR}/.", f"{staging}/runtime/"], sudo=True, timeout=600)
        paused = ssh.run(host.compose(["pause", "ovpn-agent"]), sudo=True, check=False, timeout=60).ok
        try:
            ssh.run(["cp", "-a", f"{volume}/.", f"{staging}/agent-data/"], sudo=True, timeout=600)
        finally:
            if paused:
                ssh.run(host.compose(["unpause", "ovpn-agent"]), sudo=True, check=False, timeout=60)
        result = ssh.run(["tar", "-C", staging, "-czf", archive, "runtime", "agent-data"], sudo=True,
                         check=False, timeout=900)  # fmt: skip
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


def restore(app: App, name: str, source: str, progress: Progress, gate_timeout: int = 90) -> str:
    """Restore `source` (a file name in /opt/ovpn-backups, or its full path); returns the new revision."""
    file_name = source.rsplit("/", 1)[-1]
    if not _ARCHIVE_RE.match(file_name) or (
        source.startswith("/") and not source.startswith(f"{BACKUP_DIR}/")
    ):
        raise OvpnError(
            f"{source!r} is not an ovpn backup archive", f"see the archives in {BACKUP_DIR} on the host"
        )
    archive = f"{BACKUP_DIR}/{file_name}"
    with app.reading() as repo:
        server = repo.server(name)
        pool_nonempty = bool(repo.attachments(name)) if server.is_proxy else False
    revision = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-restored"
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        progress(f"verifying {archive}")
        expected = ssh.run(["cat", f"{archive}.sha256"], sudo=True, check=False, timeout=30)
        actual = ssh.run(["sha256sum", archive], sudo=True, check=False, timeout=300)
        if not expected.ok or not actual.ok:
            raise OvpnError(
                f"{archive} or its checksum is missing on {name}", f"see the archives in {BACKUP_DIR}"
            )
        if expected.text.split()[0] != actual.text.split()[0]:
            raise OvpnError(
                f"{archive} does not match its checksum: refusing to restore it", "use another backup"
            )
        previous = host.live_release()
        work = f"{RELEASES_DIR}/{revision}.partial"
        ssh.run(["mkdir", "-p", work], sudo=True, timeout=30)
        ssh.run(["tar", "-C", work, "-xzf", archive, "--numeric-owner", "--same-owner", "--same-permissions"],
                sudo=True, timeout=900)  # fmt: skip
        if not ssh.run(["test", "-f", f"{work}/runtime/{RELEASE_MARKER}"], sudo=True, check=False).ok:
            ssh.run(["rm", "-rf", work], sudo=True, timeout=120)
            raise OvpnError(f"{archive} holds no ovpn release", "use an archive made by `ovpn server backup`")
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
        start(host, "never", monitoring)
        gate = health_gate(host, pool_nonempty, gate_timeout)
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
