"""What `server restore` accepts: the archive's manifest, its tar listing, and the digest it must match.

The listing tests read GNU tar's real output: a captured listing, and archives crafted here and listed by this
machine's `tar` with the same arguments restore uses on the host.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest
from tests.support.cli import run_cli

import ovpn.ops.restore
from ovpn.errors import OvpnError
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
from ovpn.state.db import DB_FILE

# `tar -tvzf ARCHIVE --quoting-style=c --numeric-owner --full-time` (GNU tar 1.34) of a hostile archive.
CAPTURED = r"""
drwxr-xr-x 0/0               0 2026-12-03 10:16:57 "runtime/"
prw-r--r-- 0/0               0 2026-12-03 10:16:57 "runtime/fifo"
lrwxrwxrwx 0/0               0 2026-12-03 10:16:57 "runtime/abs" -> "/etc/passwd"
-rwsr-xr-x 0/0               3 2026-12-03 10:16:57 "runtime/suid"
drwxr-xr-x 0/0               0 2026-12-03 10:16:57 "runtime/sub/"
lrwxrwxrwx 0/0               0 2026-12-03 10:16:57 "runtime/sub/rel" -> "../a"
-rw-r--r-- 0/0               1 2026-12-03 10:16:57 "runtime/new\nline"
-rw-r--r-- 0/0               3 2026-12-03 10:16:57 "runtime/hard"
hrw-r--r-- 0/0               0 2026-12-03 10:16:57 "runtime/a" link to "runtime/hard"
-rw-r--r-- 0/0               2 2026-12-03 10:16:57 "runtime/we ird -> name"
crw-r--r-- 0/0             1,3 1970-01-01 00:00:00 "runtime/dev"
drwxr-xr-x 0/0               0 2026-12-03 10:16:57 "agent-data/"
"""


def test_the_captured_listing_is_read_field_by_field() -> None:
    members = {m.name: m for m in parse_listing(CAPTURED)}
    assert len(members) == 12
    assert members["runtime/abs"] == Member("l", "lrwxrwxrwx", "runtime/abs", "/etc/passwd")
    assert members["runtime/a"] == Member("h", "hrw-r--r--", "runtime/a", "runtime/hard")
    # A name holding " -> " or a newline stays one name, still in tar's quoted form.
    assert members["runtime/we ird -> name"].target == ""
    assert "runtime/new\\nline" in members
    assert members["runtime/dev"].kind == "c"


def test_the_captured_listing_is_refused_for_each_unsafe_entry() -> None:
    problems = member_problems(parse_listing(CAPTURED))
    assert problems == [
        '"runtime/fifo" is a FIFO',
        '"runtime/abs" is a symlink to "/etc/passwd", outside its folder',
        '"runtime/suid" is setuid',
        '"runtime/sub/rel" is a symlink to "../a", outside its folder',
        '"runtime/dev" is a character device',
    ]


def test_a_listing_line_ovpn_cannot_read_is_refused() -> None:
    with pytest.raises(OvpnError, match="cannot read"):
        parse_listing("-rw-r--r-- 0/0 3 2026-12-03 10:16:57 runtime/unquoted\n")


def _entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def _list(tmp_path: Path, entries: list[tarfile.TarInfo]) -> list[Member]:
    """Write the entries as a .tar.gz and list it with the real `tar`, as restore does on the host."""
    archive = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"") if info.type == tarfile.REGTYPE else None)
    listing = subprocess.run(listing_argv(str(archive)), capture_output=True, text=True, check=True)
    return parse_listing(listing.stdout)


GOOD = [
    _entry(MANIFEST_NAME, mode=0o600),
    _entry("runtime/", tarfile.DIRTYPE, 0o755),
    _entry("runtime/.ovpn-release.json"),
    _entry("runtime/xray/config.json", mode=0o600),
    _entry("runtime/xray/current", tarfile.SYMTYPE, 0o777, "config.json"),
    _entry("runtime/copy", tarfile.LNKTYPE, link="runtime/xray/config.json"),
    _entry("runtime/tmp/", tarfile.DIRTYPE, 0o1777),
    _entry("agent-data/", tarfile.DIRTYPE, 0o755),
    _entry("agent-data/agent.db"),
]


def test_an_archive_laid_out_as_backup_makes_it_passes(tmp_path: Path) -> None:
    members = _list(tmp_path, GOOD)
    assert member_problems(members) == []
    assert has_release(members)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_entry("runtime/sh", mode=0o4755), '"runtime/sh" is setuid'),
        (_entry("runtime/sh", mode=0o2755), '"runtime/sh" is setgid'),
        (_entry("runtime/null", tarfile.CHRTYPE), '"runtime/null" is a character device'),
        (_entry("runtime/sda", tarfile.BLKTYPE), '"runtime/sda" is a block device'),
        (_entry("runtime/pipe", tarfile.FIFOTYPE), '"runtime/pipe" is a FIFO'),
        (_entry("runtime/pw", tarfile.SYMTYPE, link="/etc/passwd"), 'symlink to "/etc/passwd"'),
        (_entry("runtime/up", tarfile.SYMTYPE, link="../../etc"), 'symlink to "../../etc"'),
        (_entry("runtime/shadow", tarfile.LNKTYPE, link="etc/shadow"), 'hard link to "etc/shadow"'),
        (_entry("runtime/../../etc/cron.d/x"), "goes up with '..'"),
        (_entry("/etc/cron.d/x"), "is an absolute path"),
        (_entry("etc/cron.d/x"), "is outside runtime/ and agent-data/"),
        (_entry("runtime/.ovpn-release.json"), '"runtime/.ovpn-release.json" appears twice'),
    ],
)
def test_an_unsafe_entry_is_refused(tmp_path: Path, entry: tarfile.TarInfo, problem: str) -> None:
    problems = member_problems(_list(tmp_path, [*GOOD, entry]))
    assert len(problems) == 1 and problem in problems[0], problems


def test_an_archive_without_the_release_marker_is_not_a_release(tmp_path: Path) -> None:
    members = _list(tmp_path, [e for e in GOOD if e.name != "runtime/.ovpn-release.json"])
    assert member_problems(members) == [] and not has_release(members)


MANIFEST = Manifest("vpn-nl", "vpn", "2026-12-03T10:16:57+00:00", "20261203T101600Z-0123abcd")


def test_the_manifest_round_trips() -> None:
    assert parse_manifest(MANIFEST.to_json().decode()) == MANIFEST


@pytest.mark.parametrize(
    "text", ["", "[]", '{"format": 2, "server": "vpn-nl"}', '{"format": 1, "server": "vpn-nl"}',
             '{"format": 1, "server": 1, "role": "vpn", "created_at": "", "revision": ""}'],
)  # fmt: skip
def test_an_unreadable_manifest_is_refused(text: str) -> None:
    with pytest.raises(OvpnError, match=r"ovpn-backup\.json is unreadable"):
        parse_manifest(text)


def test_the_manifest_must_name_the_target_server_and_role() -> None:
    check_origin(MANIFEST, "vpn-nl", "vpn", recorded=False)
    with pytest.raises(OvpnError, match=r"taken from vpn-nl \(vpn\), not from vpn-de \(vpn\)"):
        check_origin(MANIFEST, "vpn-de", "vpn", recorded=True)
    with pytest.raises(OvpnError, match="not from vpn-nl \\(proxy\\)"):
        check_origin(MANIFEST, "vpn-nl", "proxy", recorded=True)


def test_an_archive_without_a_manifest_needs_the_local_record() -> None:
    check_origin(None, "vpn-nl", "vpn", recorded=True)
    with pytest.raises(OvpnError, match="does not say which server"):
        check_origin(None, "vpn-nl", "vpn", recorded=False)


def _dump(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "state" / DB_FILE) as conn:
        return list(conn.iterdump())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--digest", "abc"], "invalid --digest 'abc'"),
        (
            ["--digest", "a" * 64, "--trust-host-digest"],
            "--digest and --trust-host-digest exclude each other",
        ),
    ],
)
def test_restore_refuses_before_reaching_the_host(
    seeded: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    def no_host(*_: object, **__: object) -> None:
        raise AssertionError("restore reached for the host")

    monkeypatch.setattr(ovpn.ops.restore, "locked", no_host)
    before = _dump(seeded)
    code, _, err = run_cli(capsys, "server", "restore", "vpn-nl", "--from", "vpn-nl-20260101T000000Z.tar.gz",
                           *extra)  # fmt: skip
    assert code == 1 and f"error: {message}" in err and "hint: " in err, err
    assert _dump(seeded) == before
