"""`server backup list|download`, `--download`, and `server restore --from` a host name or a local file (issue 18,
item 6), against a ScriptedRemote in place of the host. The local-file checks must refuse before any host is
contacted; a restore must give its revision one name on the host and in the state."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.support.cli import run_cli
from tests.support.fake_remote import Reply, Rule, ScriptedRemote

from ovpn.core.model import Server
from ovpn.core.names import BACKUP_DIR
from ovpn.facts.backups import HostArchive, archives, parse_archives
from ovpn.facts.base import gather
from ovpn.ops.app import App
from ovpn.ops.backup_archive import MANIFEST_NAME, Manifest, listing_argv
from ovpn.ops.deploy import GateResult
from ovpn.ops.locks import HOST_LOCK
from ovpn.ops.restore import renamed_marker
from ovpn.state.db import DB_FILE

CAPTURED = Path(__file__).parent / "captured"
NAME = "vpn-nl-20261203T101657Z.tar.gz"
ARCHIVE = f"{BACKUP_DIR}/{NAME}"
OLD_REVISION = "20261203T100000Z-1a2b3c4d"
OLD_MARKER = json.dumps({"revision": OLD_REVISION, "bundle_sha256": "ab" * 32, "server": "vpn-nl"})


def dump(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "state" / DB_FILE) as conn:
        return list(conn.iterdump())


def record(data_dir: Path, path: str, digest: str) -> None:
    with App(data_dir / "state").writing() as repo:
        repo.add_backup("vpn-nl", path, digest, 11, "tester")


def use_host(monkeypatch: pytest.MonkeyPatch, remote: ScriptedRemote) -> None:
    """Every connection reaches `remote`, which grants the host's lock (ovpn.ops.locks) to whoever asks."""
    remote.rules.insert(0, Rule((HOST_LOCK,), [Reply("locked\n")]))
    for module in ("backup", "host"):
        monkeypatch.setattr(f"ovpn.ops.{module}.connect", lambda app, server, **options: remote)


def no_host(app: object, server: Server, **options: object) -> ScriptedRemote:
    raise AssertionError(f"{server.name} was contacted")


def first_lines(err: str) -> list[str]:
    """The error's two lines, after any progress lines."""
    lines = err.splitlines()
    return next((lines[i : i + 2] for i, line in enumerate(lines) if line.startswith("error: ")), lines)


# the listing


def test_the_archive_listing_from_real_output() -> None:
    found = parse_archives((CAPTURED / "backup-list-coreutils-9.1.txt").read_text())
    # A name with a space, a newline or a backslash is left out; the newest comes first.
    assert found == [
        HostArchive(NAME, 11, 1796293018, "6b44d64379a07d306e325402f6d32178271da5244e6b3b8c3ccfd16be81b2198"),
        HostArchive("vpn-nl-20261202T090000Z.tar.gz", 19, 1796202001,
                    "a71d4fa980ca3f6ea7e983da5b9385a909ccb90be42be071c0733dacbd721238"),
    ]  # fmt: skip
    assert parse_archives("") == []
    remote = ScriptedRemote().on("sh", "-c", reply=Reply())
    assert gather(remote, archives(BACKUP_DIR)) == []
    assert remote.calls[0][-1] == BACKUP_DIR


def test_the_listing_command_lists_hashes_and_skips_what_is_not_an_archive(tmp_path: Path) -> None:
    """The fact's own script, run here on a folder like the captured one."""
    (tmp_path / NAME).write_bytes(b"archive one")
    (tmp_path / f"{NAME}.sha256").write_text("x\n")
    (tmp_path / "dir.tar.gz").mkdir()
    (tmp_path / "link.tar.gz").symlink_to(tmp_path / NAME)
    argv = list(archives(str(tmp_path)).argv)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(b"archive one").hexdigest()
    assert [(a.name, a.size_bytes, a.sha256) for a in parse_archives(out)] == [(NAME, 11, digest)]
    missing = subprocess.run(
        [*argv[:-1], str(tmp_path / "absent")], capture_output=True, text=True, check=True
    )
    assert missing.stdout == ""


def test_backup_list_compares_each_archive_with_the_local_record(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = (CAPTURED / "backup-list-coreutils-9.1.txt").read_text()
    record(seeded, ARCHIVE, "6b44d64379a07d306e325402f6d32178271da5244e6b3b8c3ccfd16be81b2198")
    record(seeded, f"{BACKUP_DIR}/vpn-nl-20261202T090000Z.tar.gz", "0" * 64)
    use_host(monkeypatch, ScriptedRemote().on("sh", "-c", reply=Reply(captured)))
    code, out, err = run_cli(capsys, "server", "backup", "list", "vpn-nl", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["server"] == "vpn-nl"
    assert [(a["name"], a["modified_at"], a["record"]) for a in listed["archives"]] == [
        (NAME, "2026-12-03T10:16:58Z", "matches"),
        ("vpn-nl-20261202T090000Z.tar.gz", "2026-12-02T09:00:01Z", "differs"),
    ]
    assert listed["archives"][0]["path"] == ARCHIVE and listed["archives"][0]["size_bytes"] == 11
    code, out, err = run_cli(capsys, "server", "backup", "list", "vpn-nl")
    assert code == 0 and "matches" in out and "DIFFERS" in out, err


# a name the host does not hold


@pytest.mark.parametrize("source", [NAME, "vpn-nl-latest", f"{BACKUP_DIR}/{NAME}"])
def test_a_missing_archive_is_reported_as_missing(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    remote = ScriptedRemote().on("test", "-f", reply=Reply(code=1))
    use_host(monkeypatch, remote)
    before = dump(seeded)
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", source)
    name = source.rsplit("/", 1)[-1]
    assert code == 1
    assert first_lines(err) == [
        f"error: backup {name} not found on vpn-nl", "hint: see the archives there: ovpn server backup list vpn-nl"
    ]  # fmt: skip
    # The host's lock, then the one look at the archive; nothing else.
    assert [c[0] for c in remote.calls] == ["sh", "test"] and dump(seeded) == before


def test_an_archive_the_host_holds_is_then_judged_by_its_name_and_the_record(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_host(monkeypatch, ScriptedRemote().on("test", "-f", reply=Reply()))
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", "manual.tar.gz")
    assert (
        code == 1
        and first_lines(err)[0] == f"error: {BACKUP_DIR}/manual.tar.gz is not an ovpn backup archive"
    )
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", NAME)
    assert code == 1
    assert first_lines(err)[0] == f"error: this state has no record of {ARCHIVE} being taken from vpn-nl"


# copies on this machine


def test_a_download_folder_is_refused_before_the_host_is_contacted(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ovpn.ops.backup.connect", no_host)
    monkeypatch.setattr("ovpn.ops.host.connect", no_host)
    (seeded / "a-file").write_text("")
    before = dump(seeded)
    for folder, line in [
        (seeded / "absent", f"error: the download folder {seeded / 'absent'} does not exist"),
        (seeded / "a-file", f"error: {seeded / 'a-file'} is not a folder"),
    ]:
        code, _, err = run_cli(capsys, "server", "backup", "vpn-nl", "--download", str(folder))
        assert code == 1 and first_lines(err)[0] == line, err
        code, _, err = run_cli(capsys, "server", "backup", "download", "vpn-nl", NAME, "--to", str(folder))
        assert code == 1 and first_lines(err)[0] == line, err
    assert dump(seeded) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_download_folder_one_cannot_write_to_is_refused(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ovpn.ops.backup.connect", no_host)
    monkeypatch.setattr("ovpn.ops.host.connect", no_host)
    folder = seeded / "read-only"
    folder.mkdir(mode=0o500)
    code, _, err = run_cli(capsys, "server", "backup", "vpn-nl", "--download", str(folder))
    assert code == 1 and first_lines(err)[0] == f"error: the download folder {folder} is not writable"


def test_a_backup_with_download_writes_the_copy_it_recorded(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"archive bytes"
    digest = hashlib.sha256(content).hexdigest()
    remote = (
        ScriptedRemote()
        .on(".ovpn-release.json", reply=Reply(f"{OLD_MARKER}\n/opt/ovpn-releases/{OLD_REVISION}\n"))
        .on("volume", "inspect", reply=Reply("/var/lib/docker/volumes/ovpn-agent-data/_data\n"))
        .on("sha256sum", reply=lambda argv: Reply(f"{digest}  {argv[-1]}\n"))
        .on("stat", reply=Reply(f"{len(content)}\n"))
        .on("cat", reply=Reply(content.decode()))
        .on("mkdir")
        .on("cp")
        .on("pause")
        .on("unpause")
        .on("tar")
        .on("rm")
        .on("sh", "-c")
    )
    use_host(monkeypatch, remote)
    folder = seeded / "copies"
    folder.mkdir()
    code, out, err = run_cli(capsys, "server", "backup", "vpn-nl", "--download", str(folder), "--json")
    assert code == 0, err
    taken = json.loads(out)
    name = taken["remote_path"].rsplit("/", 1)[1]
    assert taken["sha256"] == digest and taken["local_copy"] == str(folder / name)
    assert (folder / name).read_bytes() == content
    assert (folder / f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    assert sorted(p.name for p in folder.iterdir()) == [name, f"{name}.sha256"]
    assert remote.ran("cat", taken["remote_path"])
    with App(seeded / "state").reading() as repo:
        assert [(b["remote_path"], b["sha256"]) for b in repo.backups("vpn-nl")] == [
            (taken["remote_path"], digest)
        ]


def test_a_copy_that_does_not_match_the_record_is_not_written(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record(seeded, ARCHIVE, hashlib.sha256(b"what was taken").hexdigest())
    use_host(monkeypatch, ScriptedRemote().on("test", "-f").on("cat", reply=Reply("something else")))
    folder = seeded / "copies"
    folder.mkdir()
    code, _, err = run_cli(capsys, "server", "backup", "download", "vpn-nl", NAME, "--to", str(folder))
    assert code == 1
    assert first_lines(err)[0].startswith(f"error: the copy of {NAME} does not match its digest ")
    assert list(folder.iterdir()) == []
    use_host(monkeypatch, ScriptedRemote().on("test", "-f").on("cat", reply=Reply("what was taken")))
    code, out, err = run_cli(capsys, "server", "backup", "download", "vpn-nl", NAME, "--to", str(folder))
    assert code == 0 and out == f"vpn-nl: verified copy {folder / NAME}\n", err


def make_archive(
    folder: Path, server: str = "vpn-nl", extra: list[tarfile.TarInfo] | None = None, name: str = NAME
) -> Path:
    """An archive laid out as `server backup` makes one, with a `.sha256` beside it."""
    manifest = Manifest(server, "vpn", "2026-12-03T10:16:57+00:00", OLD_REVISION).to_json()
    entries = [
        (tarfile.TarInfo(MANIFEST_NAME), manifest),
        (tarfile.TarInfo("runtime/.ovpn-release.json"), OLD_MARKER.encode()),
        (tarfile.TarInfo("agent-data/agent.db"), b"db"),
        *[(entry, b"") for entry in extra or []],
    ]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data))
    path = folder / name
    path.write_bytes(out.getvalue())
    (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(out.getvalue()).hexdigest()}  {name}\n")
    return path


def _setuid(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o4755
    return info


@pytest.mark.parametrize(
    ("case", "line"),
    [
        ("bad checksum", "error: {path} does not match the {name}.sha256 beside it: refusing to restore it"),
        (
            "unvouched",
            "error: nothing vouches for {path}: no {name}.sha256 beside it and no record of it here",
        ),
        ("wrong server", "error: the archive was taken from vpn-de (vpn), not from vpn-nl (vpn)"),
        ("unsafe entry", 'error: {path} holds entries ovpn will not restore: "runtime/sh" is setuid'),
        ("renamed", "error: {path} is not named like an ovpn backup (SERVER-YYYYMMDDTHHMMSSZ.tar.gz)"),
        ("absent", "error: {path} is not a file on this machine"),
    ],
)
def test_a_local_archive_is_checked_before_any_host_is_contacted(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str, line: str
) -> None:
    monkeypatch.setattr("ovpn.ops.host.connect", no_host)
    folder = seeded / "copies"
    folder.mkdir()
    path = make_archive(folder, server="vpn-de" if case == "wrong server" else "vpn-nl",
                        extra=[_setuid("runtime/sh")] if case == "unsafe entry" else [])  # fmt: skip
    side = folder / f"{NAME}.sha256"
    if case == "bad checksum":
        side.write_text(f"{'0' * 64}  {NAME}\n")
    if case == "unvouched":
        side.unlink()
    if case == "renamed":
        path = path.rename(folder / "latest.tar.gz")
    if case == "absent":
        path = folder / "vpn-nl-20200101T000000Z.tar.gz"
    before = dump(seeded)
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", str(path))
    assert code == 1 and first_lines(err)[0] == line.format(path=path, name=NAME), err
    assert dump(seeded) == before


def test_a_local_archive_given_with_trust_host_digest_is_refused(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ovpn.ops.host.connect", no_host)
    path = make_archive(seeded)
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", str(path), "--trust-host-digest")
    assert code == 1
    assert (
        first_lines(err)[0]
        == f"error: --trust-host-digest is for archives on the host, not for the local file {path}"
    )


# the revision a restore records


def test_the_restored_marker_takes_the_new_revision() -> None:
    marker = renamed_marker(OLD_MARKER, "20261203T120000Z-restored")
    assert marker is not None
    assert json.loads(marker) == {"revision": "20261203T120000Z-restored", "bundle_sha256": "ab" * 32,
                                  "server": "vpn-nl", "restored_from": OLD_REVISION}  # fmt: skip
    assert renamed_marker("{", "r") is None and renamed_marker('{"revision": 1}', "r") is None


def test_a_restore_from_a_local_file_uploads_it_and_names_its_revision_once(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_archive(seeded)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    listing = subprocess.run(listing_argv(str(path)), capture_output=True, text=True, check=True).stdout
    remote = ScriptedRemote()

    def stored_digest(argv: tuple[str, ...]) -> Reply:
        if argv[-1] not in remote.files:
            return Reply(stderr=f"sha256sum: {argv[-1]}: No such file or directory", code=1)
        return Reply(f"{hashlib.sha256(remote.files[argv[-1]]).hexdigest()}  {argv[-1]}\n")

    def live(_: tuple[str, ...]) -> Reply:
        if not remote.ran("ln", "-sfn"):
            return Reply(f"{OLD_MARKER}\n/opt/ovpn-releases/{OLD_REVISION}\n")
        marker = next(v for k, v in remote.files.items() if k.endswith("/runtime/.ovpn-release.json"))
        return Reply(f"{marker.decode()}/opt/ovpn-releases/{json.loads(marker)['revision']}\n")

    (
        remote.on("sha256sum", reply=stored_digest)
        .on("-tvzf", reply=Reply(listing))
        .on("-xzOf", reply=Reply(Manifest("vpn-nl", "vpn", "t", OLD_REVISION).to_json().decode()))
        .on(".ovpn-release.json", reply=live)
        .on("cat", reply=Reply(OLD_MARKER))
        .on("volume", "inspect", reply=Reply("/var/lib/docker/volumes/ovpn-agent-data/_data\n"))
        .on("docker", "ps", reply=Reply())
        .on("mkdir")
        .on("tar")
        .on("mv")
        .on("ln")
        .on("stop")
        .on("sh", "-c")
        .on("rm")
    )
    use_host(monkeypatch, remote)
    monkeypatch.setattr("ovpn.ops.restore.start", lambda host, pull, monitoring: None)
    monkeypatch.setattr(
        "ovpn.ops.restore.health_gate", lambda host, expect, timeout, progress: GateResult(True, [])
    )
    code, out, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", str(path))
    assert code == 0, err
    revision = out.split(" as ")[-1].strip()
    assert revision.endswith("-restored") and out == f"vpn-nl: restored {path} as {revision}\n"
    assert remote.files[ARCHIVE] == path.read_bytes()
    assert remote.files[f"{ARCHIVE}.sha256"] == f"{digest}  {NAME}\n".encode()
    marker = json.loads(remote.files[f"/opt/ovpn-releases/{revision}.partial/runtime/.ovpn-release.json"])
    assert (marker["revision"], marker["restored_from"]) == (revision, OLD_REVISION)
    assert remote.ran(
        "mv", "-T", f"/opt/ovpn-releases/{revision}.partial/runtime", f"/opt/ovpn-releases/{revision}"
    )
    with App(seeded / "state").reading() as repo:
        latest = repo.revisions("vpn-nl")[0]
    assert (latest.revision, latest.result, latest.message) == (revision, "ok", f"restored from {ARCHIVE}")
