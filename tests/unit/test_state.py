import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.support.topology import XRAY_KEY_PAIRS

from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.servers import ServerSpec, add_server
from ovpn.ops.users import add_user
from ovpn.state.db import DB_FILE, Database, migrations
from ovpn.state.secrets import KEY_FILE


def spec(name: str = "vpn-a") -> ServerSpec:
    private, _ = XRAY_KEY_PAIRS["solo"]
    return ServerSpec(name=name, role="vpn", host="203.0.113.5", reality_private_key=private)


def test_migrations_bring_a_new_database_to_the_latest_version(tmp_path: Path) -> None:
    db = Database(tmp_path)
    assert db.schema_version() == len(migrations()) >= 1
    tables = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"servers", "proxy_backends", "users", "server_secrets"} <= tables
    db.close()
    assert Database(tmp_path).schema_version() == len(migrations())


def test_a_database_from_a_newer_ovpn_is_refused(tmp_path: Path) -> None:
    Database(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(OvpnError, match="newer than this ovpn knows"):
        Database(tmp_path)


def test_private_keys_are_encrypted_at_rest_with_a_0600_key_file(tmp_path: Path) -> None:
    app = App(tmp_path, env={})
    add_server(app, spec())
    raw = (tmp_path / DB_FILE).read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob(f"{DB_FILE}-*"))
    assert XRAY_KEY_PAIRS["solo"][0].encode() not in raw
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    with app.reading() as repo:
        assert repo.server("vpn-a").reality_private_key == XRAY_KEY_PAIRS["solo"][0]


def test_the_key_can_come_from_the_environment_and_must_match(tmp_path: Path) -> None:
    key = "00" * 32
    add_server(App(tmp_path, env={"OVPN_SECRET_KEY": key}), spec())
    assert not (tmp_path / KEY_FILE).exists()
    with (
        App(tmp_path, env={"OVPN_SECRET_KEY": "11" * 32}).reading() as repo,
        pytest.raises(OvpnError, match="secret key does not match"),
    ):
        repo.server("vpn-a")


def test_a_malformed_environment_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OvpnError, match="not 32 bytes"):
        add_server(App(tmp_path, env={"OVPN_SECRET_KEY": "too-short"}), spec())


def test_a_failed_command_leaves_no_partial_write(tmp_path: Path) -> None:
    app = App(tmp_path, env={})
    add_server(app, spec())
    with pytest.raises(OvpnError), app.writing() as repo:
        repo.conn.execute("UPDATE servers SET host = 'changed.example' WHERE name = 'vpn-a'")
        raise OvpnError("boom")
    with app.reading() as repo:
        assert repo.server("vpn-a").host == "203.0.113.5"


BUMP = textwrap.dedent(
    """
    import dataclasses, sys
    from pathlib import Path
    from ovpn.ops.app import App
    from ovpn.ops.users import change_user
    app = App(Path(sys.argv[1]), env={})
    for _ in range(int(sys.argv[2])):
        change_user(app, "alice", lambda u: dataclasses.replace(u, quota_bytes=(u.quota_bytes or 0) + 1))
    """
)


def test_two_processes_never_lose_an_update(tmp_path: Path) -> None:
    app = App(tmp_path, env={})
    add_user(app, "alice", quota_bytes=0)
    rounds = 60
    procs = [subprocess.Popen([sys.executable, "-c", BUMP, str(tmp_path), str(rounds)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with app.reading() as repo:
        assert repo.user("alice").quota_bytes == 2 * rounds


HOLD = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


def test_a_held_lock_gives_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    add_user(App(tmp_path, env={}), "alice")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / DB_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "OVPN_LOCK_TIMEOUT": "0.2"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ovpn",
                "--data-dir",
                str(tmp_path),
                "user",
                "disable",
                "--username",
                "alice",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.returncode == 1
    assert "locked by another ovpn process" in result.stderr
    assert "Traceback" not in result.stderr


def test_telegram_settings_round_trip_reach_the_env_and_go_with_the_server(tmp_path: Path) -> None:
    from ovpn.core.model import TelegramSettings
    from ovpn.ops.render import render_server
    from ovpn.ops.servers import remove_server

    app = App(tmp_path, env=dict(os.environ))
    add_server(app, spec())
    with app.reading() as repo:
        assert repo.telegram("vpn-a") is None
    with app.writing() as repo:
        repo.set_telegram("vpn-a", TelegramSettings(42, (-1001, 7)))
        repo.set_telegram("vpn-a", TelegramSettings(43, (-1002,), "http://10.0.0.2:8081"))
    with app.reading() as repo:
        assert repo.telegram("vpn-a") == TelegramSettings(43, (-1002,), "http://10.0.0.2:8081")
    env = render_server(app, "vpn-a").bundle[".env"].content.decode()
    assert "OVPN_TELEGRAM_OWNER_USER_ID=43\n" in env and "OVPN_TELEGRAM_NOTIFY_CHAT_IDS=-1002\n" in env
    assert "OVPN_TELEGRAM_API_BASE_URL=http://10.0.0.2:8081\n" in env
    remove_server(app, "vpn-a")
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        assert conn.execute("SELECT COUNT(*) FROM telegram_settings").fetchone()[0] == 0
