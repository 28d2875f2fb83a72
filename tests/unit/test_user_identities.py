"""Users Xray cannot tell apart: refused when added, and, in state written before ovpn refused them, reported and
refused at render, never rewritten."""

import sqlite3
from pathlib import Path

import pytest
from tests.support.cli import run_cli

from ovpn.core.model import RESERVED_EMAILS
from ovpn.ops.app import App
from ovpn.ops.users import identity_clash_warnings
from ovpn.state.db import DB_FILE, Database, migrations

TRIGGERS = ("users_identity_on_insert", "users_identity_on_update")
UUIDS = {
    "Alice": "11111111-1111-4111-8111-111111111111",
    "bob": "22222222-2222-4222-8222-222222222222",
    "carol": "33333333-3333-4333-8333-333333333333",
}


def insert_user(conn: sqlite3.Connection, username: str, email: str, uuid: str) -> None:
    conn.execute(
        "INSERT INTO users (username, uuid, email, enabled, expiry_date, quota_bytes, notes, tags, created_at, "
        "updated_at) VALUES (?, ?, ?, 1, NULL, NULL, '', '[]', '2026-01-01T00:00:00+00:00', "
        "'2026-01-01T00:00:00+00:00')",
        (username, uuid, email),
    )


def user_rows(data_dir: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "state" / DB_FILE) as conn:
        return conn.execute("SELECT * FROM users ORDER BY id").fetchall()


@pytest.fixture
def clashing(seeded: Path) -> Path:
    """The seed's state as ovpn wrote it before migration 0007, with users it accepted then: Alice beside alice,
    bob with ALICE@global, carol with the relay's email in capitals."""
    with sqlite3.connect(seeded / "state" / DB_FILE) as conn:
        for trigger in TRIGGERS:
            conn.execute(f"DROP TRIGGER {trigger}")
        # The deploy history as it was before 0008 (the seed has no revisions to keep).
        conn.execute("DROP TABLE deploy_revisions")
        conn.executescript(_migration("0002_deploy_revisions.sql"))
        insert_user(conn, "Alice", "Alice@global", UUIDS["Alice"])
        insert_user(conn, "bob", "ALICE@global", UUIDS["bob"])
        insert_user(conn, "carol", "PROXY-SERVICE@cluster", UUIDS["carol"])
        conn.execute("PRAGMA user_version = 6")
    return seeded


def _migration(name: str) -> str:
    return next(sql for _, file, sql in migrations() if file == name)


def test_existing_clashes_are_reported_and_left_as_they_are(
    clashing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = user_rows(clashing)
    warnings = identity_clash_warnings(App(clashing / "state"))
    assert Database(clashing / "state").schema_version() == len(migrations())
    assert user_rows(clashing) == before
    code, _, err = run_cli(capsys, "user", "list")
    assert code == 0 and err.splitlines() == [f"warning: {line}" for line in warnings]
    assert warnings == [
        "user carol has the email proxy-service@cluster, which is reserved for ovpn itself: servers refuse to "
        "render until this is fixed",
        "users alice and Alice have the same username apart from case (alice): servers refuse to render until "
        "this is fixed",
        "users alice and Alice and bob have the same email apart from case (alice@global): servers refuse to "
        "render until this is fixed",
        "run `ovpn user rm --username Alice` and `ovpn user rm --username bob` and `ovpn user rm --username carol`, "
        "then add each again with another --username or --email (note the UUID `ovpn user show` prints first: "
        "`--uuid` with it keeps the links working)",
    ]


def test_a_render_names_the_clash_and_works_once_it_is_fixed(
    clashing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = clashing / "bundle"
    code, _, err = run_cli(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out))
    assert code == 1 and not out.exists()
    # The first command after the upgrade also reports the clashes as warnings (see the test above).
    error, hint = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert error.startswith("error: Xray cannot tell these users apart: user carol has the email")
    assert "users alice and Alice have the same username apart from case" in error
    assert hint.startswith("hint: run `ovpn user rm --username Alice` and `ovpn user rm --username bob`")
    # The fix the hint names, keeping each user's UUID so that their links keep working.
    for name in UUIDS:
        assert run_cli(capsys, "user", "rm", "--username", name)[0] == 0
    for name, email in (("alice2", "alice2@global"), ("bob", "bob@global"), ("carol", "carol@global")):
        uuid = UUIDS["Alice" if name == "alice2" else name]
        code, _, err = run_cli(capsys, "user", "add", "--username", name, "--email", email, "--uuid", uuid)
        assert code == 0, err
    code, _, err = run_cli(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out))
    assert code == 0, err
    assert identity_clash_warnings(App(clashing / "state")) == []


def test_a_clashing_user_can_still_be_disabled_and_its_expiry_set(
    clashing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ("disable", "--username", "Alice"),
        ("expiry-set", "--username", "carol", "--date", "2099-01-01"),
    ):
        code, _, err = run_cli(capsys, "user", *argv)
        assert code == 0, err
    with sqlite3.connect(clashing / "state" / DB_FILE) as conn:
        rows = conn.execute("SELECT username, enabled, expiry_date FROM users ORDER BY id").fetchall()
    assert rows == [("alice", 1, None), ("Alice", 0, None), ("bob", 1, None), ("carol", 1, "2099-01-01")]


def test_the_state_itself_refuses_a_new_clash(seeded: Path) -> None:
    with sqlite3.connect(seeded / "state" / DB_FILE) as conn:
        insert_user(conn, "bob", "bob@global", UUIDS["bob"])
        for username, email in [("ALICE", "x@global"), ("x", "Alice@Global")] + [
            ("x", e.upper()) for e in RESERVED_EMAILS
        ]:
            with pytest.raises(sqlite3.IntegrityError, match="user identity clash"):
                insert_user(conn, username, email, UUIDS["Alice"])
        for column, value, username in [("username", "BOB", "alice"), ("email", "Bob@global", "alice")] + [
            ("email", e, "bob") for e in RESERVED_EMAILS
        ]:
            with pytest.raises(sqlite3.IntegrityError, match="user identity clash"):
                conn.execute(f"UPDATE users SET {column} = ? WHERE username = ?", (value, username))
        # What keeps an identity, or only changes its case, is allowed.
        conn.execute(
            "UPDATE users SET username = 'bob', email = 'bob@global', enabled = 0 WHERE username = 'bob'"
        )
        conn.execute("UPDATE users SET email = 'BOB@global' WHERE username = 'bob'")
        row = conn.execute("SELECT username, email, enabled FROM users WHERE username = 'bob'").fetchone()
        assert row == ("bob", "BOB@global", 0)


def test_the_migration_reports_existing_clashes_once(
    clashing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = user_rows(clashing)
    code, _, err = run_cli(capsys, "server", "list")
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 4 and "carol" in warned[0] and "ovpn user rm --username" in warned[-1]
    assert user_rows(clashing) == before
    code, _, err = run_cli(capsys, "server", "list")  # migrated now: no report on every command
    assert code == 0 and "warning" not in err
