"""The state file under damage and misuse: a lost or wrong key, loose file modes, corrupt or hand-edited files, bad
settings, a full disk, readers beside a writer and a read-only data directory. Every refusal is one line and a
hint, a non-zero exit, no traceback, and the state file left byte for byte as it was."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.cli import run_cli
from tests.support.topology import XRAY_KEY_PAIRS

from ovpn.core.model import TelegramSettings
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.pools import attach
from ovpn.ops.servers import ServerSpec, add_server
from ovpn.ops.users import add_user
from ovpn.state.db import DB_FILE, Database, migrations
from ovpn.state.secrets import KEY_FILE

OVPN = Path(sys.executable).with_name("ovpn")
OTHER_KEY = "11" * 32


def settle(data_dir: Path) -> None:
    """Close every connection this process left open, so all commits are in ovpn.db itself (no -wal)."""
    gc.collect()
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def db_bytes(data_dir: Path) -> bytes:
    gc.collect()  # the CLI's connection closes here; anything it committed would now be in the file
    return (data_dir / DB_FILE).read_bytes()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fleet: a proxy with one backend (secrets sealed), a user, Telegram settings."""
    data_dir = tmp_path_factory.mktemp("template") / "state"
    app = App(data_dir, env={})
    add_server(app, ServerSpec(name="proxy-ru", role="proxy", host="10.9.0.1", proxy_preset="ru"))
    add_server(
        app,
        ServerSpec(name="vpn-nl", role="vpn", host="10.9.0.2", reality_private_key=XRAY_KEY_PAIRS["pool"][0]),
    )
    attach(app, "proxy-ru", "vpn-nl", 100)
    add_user(app, "alice")
    with app.writing() as repo:
        repo.set_telegram("vpn-nl", TelegramSettings(42, (-1001,)))
    del app
    settle(data_dir)
    return data_dir


@pytest.fixture
def state(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "state"
    shutil.copytree(template, data_dir)
    monkeypatch.setenv("OVPN_DATA_DIR", str(data_dir))
    monkeypatch.delenv("OVPN_SECRET_KEY", raising=False)
    monkeypatch.delenv("OVPN_LOCK_TIMEOUT", raising=False)
    return data_dir


def refused(capsys: pytest.CaptureFixture[str], command: str, expected: str) -> str:
    code, out, err = run_cli(capsys, *command.split())
    assert code == 1, (out, err)
    assert "Traceback" not in err
    assert err.startswith("error: ") and "\nhint: " in err, err
    assert expected in err, err
    return err


# item 4: a lost or a wrong secret key


def test_a_lost_key_is_not_replaced_while_the_state_holds_secrets(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (state / KEY_FILE).unlink()
    before = db_bytes(state)
    err = refused(capsys, "user add --username bob", f"{KEY_FILE} is missing")
    assert "OVPN_SECRET_KEY" in err.split("hint: ")[1]
    assert not (state / KEY_FILE).exists()
    assert db_bytes(state) == before
    # A read that opens a secret is refused the same way; one that needs none still works.
    refused(capsys, "server show vpn-nl", f"{KEY_FILE} is missing")
    code, out, _ = run_cli(capsys, "user", "list")
    assert code == 0 and "alice" in out


@pytest.mark.parametrize("where", ["file", "env"])
def test_a_key_that_does_not_open_the_state_is_refused_before_any_write(
    where: str, state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if where == "env":
        monkeypatch.setenv("OVPN_SECRET_KEY", OTHER_KEY)
    else:
        (state / KEY_FILE).write_text(OTHER_KEY + "\n")
    before = db_bytes(state)
    refused(capsys, "user add --username bob", "does not decrypt the secrets already in the state")
    assert db_bytes(state) == before


def test_a_new_state_gets_its_key_on_the_first_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "fresh"
    code, _, err = run_cli(capsys, "--data-dir", str(data_dir), "server", "add", "--name", "a", "--role", "vpn",
                           "--host", "10.9.0.3")  # fmt: skip
    assert code == 0, err
    assert len((data_dir / KEY_FILE).read_text().strip()) == 44


# item 7: file modes


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("loose_umask")
def test_state_files_are_0600_in_an_existing_folder_and_a_new_folder_is_0700(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    app = App(existing, env={})
    add_server(app, ServerSpec(name="a", role="vpn", host="10.9.0.3"))
    with app.reading():  # the connection is open: its -wal and -shm exist now
        files = [existing / n for n in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", KEY_FILE)]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    new = tmp_path / "new" / "state"
    App(new, env={}).db.close()
    assert stat.S_IMODE(new.stat().st_mode) == 0o700
    assert stat.S_IMODE((new / DB_FILE).stat().st_mode) == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_loose_modes_left_by_an_older_ovpn_are_tightened(state: Path) -> None:
    for name in (DB_FILE, KEY_FILE):
        (state / name).chmod(0o644)
    with App(state, env={}).reading() as repo:
        repo.server("vpn-nl")
    assert stat.S_IMODE((state / DB_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600


# item 9 and item 14: damaged files and settings


def _garbage(data_dir: Path) -> None:
    size = (data_dir / DB_FILE).stat().st_size
    (data_dir / DB_FILE).write_bytes(bytes(range(256)) * (size // 256))


def _truncate(fraction: float) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        path = data_dir / DB_FILE
        os.truncate(path, int(path.stat().st_size * fraction))

    return damage


def _sql(*statements: str) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        conn = sqlite3.connect(data_dir / DB_FILE, isolation_level=None)
        try:
            conn.execute("PRAGMA ignore_check_constraints = ON")
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    return damage


def _replace_with_folder(name: str) -> Callable[[Path], None]:
    def damage(data_dir: Path) -> None:
        (data_dir / name).unlink()
        (data_dir / name).mkdir()

    return damage


DAMAGE: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "garbage": (_garbage, "server list", "is damaged"),
    "garbage, write": (_garbage, "user add --username bob", "is damaged"),
    "truncated to 100 bytes": (_truncate(100 / 200_000), "user list", "is damaged"),
    "truncated by half": (_truncate(0.5), "user add --username bob", "is damaged"),
    "zero length": (_truncate(0), "server list", "is empty"),
    "version moved back": (_sql("PRAGMA user_version = 3"), "server list", "tables are not that version's"),
    "version zeroed": (_sql("PRAGMA user_version = 0"), "user list", "tables are not that version's"),
    "version negative": (_sql("PRAGMA user_version = -1"), "user list", "invalid schema version"),
    "db is a folder": (_replace_with_folder(DB_FILE), "server list", "is a directory"),
    "key is a folder": (_replace_with_folder(KEY_FILE), "user add --username bob", "cannot read the secret key"),
    "role": (_sql("UPDATE servers SET role = 'exit' WHERE name = 'vpn-nl'"), "server list",
             "servers row 'vpn-nl', column role"),
    "port": (_sql("UPDATE servers SET port = 'https' WHERE name = 'vpn-nl'"), "server list",
             "servers row 'vpn-nl', column port"),
    "ssh port": (_sql("UPDATE servers SET ssh_port = 70000 WHERE name = 'vpn-nl'"), "server show vpn-nl",
                 "column ssh_port"),
    "images not json": (_sql("UPDATE servers SET images = '{oops' WHERE name = 'vpn-nl'"), "server list",
                        "servers row 'vpn-nl', column images"),
    "images a list": (_sql("UPDATE servers SET images = '[1]' WHERE name = 'vpn-nl'"), "server list",
                      "column images"),
    "sealed key damaged": (_sql("UPDATE servers SET reality_private_key = 'enc:v1:%%%' WHERE name = 'vpn-nl'"),
                           "server show vpn-nl", "is damaged"),
    "name not text": (_sql("UPDATE users SET username = x'00ff' WHERE username = 'alice'"), "user list",
                      "users row id 1, column username"),
    "expiry": (_sql("UPDATE users SET expiry_date = '2026-13-45'"), "user list",
               "users row 'alice', column expiry_date"),
    "tags not json": (_sql("UPDATE users SET tags = 'pilot'"), "user list", "users row 'alice', column tags"),
    "tags not strings": (_sql("UPDATE users SET tags = '[1, 2]'"), "user list", "column tags"),
    "enabled": (_sql("UPDATE users SET enabled = 'yes'"), "user list", "column enabled"),
    "quota": (_sql("UPDATE users SET quota_bytes = 'lots'"), "user list", "column quota_bytes"),
    "priority": (_sql("UPDATE proxy_backends SET priority = 'high'"), "server backend list --proxy proxy-ru",
                 "proxy_backends row 'proxy-ru' -> 'vpn-nl', column priority"),
    "chat ids": (_sql("UPDATE telegram_settings SET notify_chat_ids = 'a,b'"), "config render --server vpn-nl",
                 "telegram_settings row of 'vpn-nl', column notify_chat_ids"),
}  # fmt: skip


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_state_is_refused_with_one_line_and_left_as_it_was(
    case: str, state: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    damage, command, expected = DAMAGE[case]
    damage(state)
    if command.startswith("config render"):
        command += f" --out {tmp_path / 'bundle'}"
    before = db_bytes(state) if (state / DB_FILE).is_file() else b""
    refused(capsys, command, expected)
    assert (db_bytes(state) if (state / DB_FILE).is_file() else b"") == before


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan", "1e999"])
def test_a_bad_lock_timeout_is_refused(
    value: str, state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVPN_LOCK_TIMEOUT", value)
    before = db_bytes(state)
    refused(capsys, "user add --username bob", "OVPN_LOCK_TIMEOUT must be a number of seconds")
    assert db_bytes(state) == before


def test_a_state_one_version_behind_is_migrated(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for version, _, sql in migrations()[:-1]:
        conn.executescript(sql)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    assert Database(tmp_path).schema_version() == len(migrations())


def test_a_full_disk_during_a_write_rolls_back_cleanly(state: Path) -> None:
    """SQLite rolls a transaction back by itself on SQLITE_FULL; ovpn's own ROLLBACK must not then fail."""
    app = App(state, env={})
    with app.reading() as repo:
        pages = repo.conn.execute("PRAGMA page_count").fetchone()[0]
    app.db.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(OvpnError, match=r"the disk holding .* is full"):
        add_user(app, "bob", notes="x" * 50_000)
    assert not app.db.conn.in_transaction


# item 10: readers beside a writer, and a read-only data directory


def test_a_read_does_not_wait_for_a_writer(
    state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVPN_LOCK_TIMEOUT", "2")
    writer = sqlite3.connect(state / DB_FILE, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE users SET notes = 'being changed'")
        started = time.monotonic()
        code, out, err = run_cli(capsys, "server", "list")
        elapsed = time.monotonic() - started
    finally:
        writer.close()
    assert code == 0, err
    assert "vpn-nl" in out
    assert elapsed < 1.5, f"the read waited {elapsed:.1f} s for the writer"


def _namespace_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root in a private mount namespace (its mounts vanish with it)."""
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-euc", script, "sh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _can_mount() -> bool:
    try:
        return _namespace_script("mount -t tmpfs tmpfs /mnt").returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


needs_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not _can_mount(),
    reason="needs root and mount namespaces",
)

READ_ONLY = """
mount --bind "$1" "$1"
mount -o remount,bind,ro "$1"
OVPN_DATA_DIR="$1" "$2" server list
if OVPN_DATA_DIR="$1" "$2" user add --username bob 2>"$3"; then exit 9; fi
"""


@needs_mounts
def test_a_read_only_data_directory_can_still_be_read(state: Path, tmp_path: Path) -> None:
    before = db_bytes(state)
    result = _namespace_script(READ_ONLY, str(state), str(OVPN), str(tmp_path / "write.err"))
    assert result.returncode == 0, result.stderr
    assert "vpn-nl" in result.stdout and "proxy-ru" in result.stdout
    write_err = (tmp_path / "write.err").read_text()
    assert write_err.startswith("error: ") and "read-only" in write_err and "Traceback" not in write_err
    assert db_bytes(state) == before


FULL_DISK = """
mount -t tmpfs -o size=512k,mode=0700 tmpfs "$1"
cp -a "$2/." "$1/"
"$3" -c 'import os, sys
free = os.statvfs(sys.argv[1]).f_bavail * os.statvfs(sys.argv[1]).f_frsize
open(sys.argv[1] + "/filler", "wb").write(b"\\0" * (free - 48 * 1024))' "$1"
rc=0
OVPN_DATA_DIR="$1" "$4" user add --username bob --notes "$5" 2>"$6" || rc=$?
cp "$1/ovpn.db" "$7"
exit $rc
"""


@needs_mounts
def test_a_full_disk_at_commit_is_one_line_and_changes_nothing(state: Path, tmp_path: Path) -> None:
    """WAL mode writes a transaction's pages at COMMIT, so 48 KiB free (room for the -shm index, not for 60 KB of
    notes) makes the COMMIT itself fail with SQLITE_FULL, on a real full file system."""
    before = db_bytes(state)
    full, err, after = tmp_path / "full", tmp_path / "add.err", tmp_path / "after.db"
    full.mkdir()
    result = _namespace_script(
        FULL_DISK, str(full), str(state), sys.executable, str(OVPN), "n" * 60_000, str(err), str(after)
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    stderr = err.read_text()
    assert "Traceback" not in stderr
    assert stderr.startswith("error: the disk holding") and "hint: free some space" in stderr, stderr
    assert after.read_bytes() == before
