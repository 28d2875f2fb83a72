"""`server backup`: the live release and the agent's data, in one checksummed archive; the archives on a host;
an operator's verified copy of one.

The archive (`/opt/ovpn-backups/<server>-<UTC time>.tar.gz`) holds `ovpn-backup.json` (which server it was
taken from), `runtime/` (the files of the live release) and `agent-data/` (the agent's volume, copied while the
agent is paused so its SQLite is consistent), with a `.sha256` file beside it; its digest is also recorded in the
local state. The newest `keep` archives are kept. A copy on the operator's machine is written only once it
matches the digest this state recorded (`backup_local`); `restore` puts an archive back.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ovpn.core.names import BACKUP_DIR, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.facts.backups import archives
from ovpn.facts.base import gather
from ovpn.ops.app import App
from ovpn.ops.backup_archive import MANIFEST_NAME, Manifest
from ovpn.ops.backup_local import download_folder, save_copy
from ovpn.ops.deploy import Progress
from ovpn.ops.host import Host, connect, locked
from ovpn.remote.base import Remote
from ovpn.render.compose import AGENT_DATA_VOLUME

KEEP_BACKUPS = 7


@dataclass(frozen=True)
class BackupResult:
    server: str
    remote_path: str
    sha256: str
    size_bytes: int
    local_copy: str | None = None


def volume_dir(host: Host) -> str:
    result = host.ssh.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", AGENT_DATA_VOLUME],
                          sudo=True, check=False, timeout=30)  # fmt: skip
    if not result.ok:
        raise OvpnError(
            f"{host.server.name} has no agent data volume", f"deploy it first: ovpn deploy {host.server.name}"
        )
    return result.text.strip()


def backup(app: App, name: str, keep: int, progress: Progress, download: str | None = None) -> BackupResult:
    """Take a backup on the host; with `download`, also write a verified copy into that local folder."""
    if keep < 1:
        raise OvpnError(f"invalid --keep {keep}", "keep at least one backup")
    folder = download_folder(download) if download is not None else None
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
        volume = volume_dir(host)
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
        if folder is None:
            return BackupResult(name, archive, digest, size)
        progress(f"downloading {archive}")
        try:
            copy = _fetch_copy(ssh, archive, digest, folder)
        except OvpnError as e:
            file_name = archive.rsplit("/", 1)[1]
            raise OvpnError(f"{e.message} (the backup itself was taken: {archive})",
                            f"ovpn server backup download {name} {file_name} --to {download}") from None  # fmt: skip
    return BackupResult(name, archive, digest, size, str(copy))


def _fetch_copy(ssh: Remote, archive: str, digest: str, folder: Path) -> Path:
    """Read the archive over the open connection and write it into `folder` once it has `digest`."""
    data = ssh.run(["cat", archive], sudo=True, timeout=900).stdout
    return save_copy(folder, archive.rsplit("/", 1)[1], data, digest)


def host_archive(source: str) -> str:
    """The path in the host's backups folder of `source` (a file name there, or its full path)."""
    name = source.removeprefix(f"{BACKUP_DIR}/")
    if not name or "/" in name or name in (".", ".."):
        raise OvpnError(f"{source!r} is not the name of a file in {BACKUP_DIR}",
                        "give an archive's name as `ovpn server backup list SERVER` shows it")  # fmt: skip
    return f"{BACKUP_DIR}/{name}"


def require_archive(ssh: Remote, server: str, archive: str) -> None:
    """Refuse an archive the host does not hold, by name, before anything judges its contents."""
    if not ssh.run(["test", "-f", archive], sudo=True, check=False, timeout=30).ok:
        raise OvpnError(f"backup {archive.rsplit('/', 1)[1]} not found on {server}",
                        f"see the archives there: ovpn server backup list {server}")  # fmt: skip


def recorded_digests(app: App, name: str) -> dict[str, str]:
    """Archive path -> the digest this state recorded when it was taken (the newest record of a path wins)."""
    with app.reading() as repo:
        return {str(b["remote_path"]): str(b["sha256"]) for b in reversed(repo.backups(name))}


RecordState = Literal["matches", "differs", "none"]


@dataclass(frozen=True)
class ListedArchive:
    name: str
    path: str
    size_bytes: int
    modified_at: str  # UTC, ISO 8601
    sha256: str
    record: RecordState  # how its digest on the host compares with the one this state recorded


def list_backups(app: App, name: str) -> list[ListedArchive]:
    """The archives in the host's backups folder, newest first, each against this state's record."""
    with app.reading() as repo:
        server = repo.server(name)
    recorded = recorded_digests(app, name)
    with connect(app, server) as ssh:
        found = gather(ssh, archives(BACKUP_DIR))
    listed = []
    for a in found:
        path = f"{BACKUP_DIR}/{a.name}"
        expected = recorded.get(path)
        state: RecordState = "none" if expected is None else "matches" if expected == a.sha256 else "differs"
        when = datetime.fromtimestamp(a.modified, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        listed.append(ListedArchive(a.name, path, a.size_bytes, when, a.sha256, state))
    return listed


def download(app: App, name: str, source: str, to: str, progress: Progress) -> Path:
    """Copy an archive this state recorded from the host into the local folder `to`, verified."""
    folder = download_folder(to)
    archive = host_archive(source)
    with app.reading() as repo:
        server = repo.server(name)
    digest = recorded_digests(app, name).get(archive)
    with connect(app, server) as ssh:
        require_archive(ssh, name, archive)
        if digest is None:
            raise OvpnError(f"this state has no record of {archive} being taken from {name}: "
                            "its copy could not be verified",
                            "download an archive `ovpn server backup` took from this state")  # fmt: skip
        progress(f"downloading {archive}")
        return _fetch_copy(ssh, archive, digest, folder)
