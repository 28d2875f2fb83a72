"""Reading and writing the domain records; callers hold a transaction from `Database`."""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ovpn.core.fields import Stored
from ovpn.core.model import SERVER_FIELDS, Attachment, PoolMember, Role, Server, TelegramSettings, User
from ovpn.errors import OvpnError
from ovpn.state.secrets import PREFIX, SecretBox

_SERVER_COLUMNS = tuple(f.name for f in SERVER_FIELDS)
_USER_COLUMNS = ("username", "uuid", "email", "enabled", "expiry_date", "quota_bytes", "notes", "tags")


@dataclass(frozen=True)
class Revision:
    revision: str
    bundle_sha256: str
    operator: str
    started_at: str
    finished_at: str | None
    result: str
    message: str
    kind: str = "deploy"  # deploy, rollback or restore
    changes: str = ""  # the files it changed, e.g. "changed xray/config.json; added .env"


class _Fields:
    """Typed reads of one row's columns. A value edited by hand into something else becomes an OvpnError naming the
    table, row and column, never a ValueError from deep inside. Values are not echoed: some are secrets."""

    def __init__(self, table: str, row: sqlite3.Row, ident: str) -> None:
        self.table, self.row, self.ident = table, row, ident

    def _bad(self, column: str, expected: str) -> OvpnError:
        return OvpnError(
            f"the state has a bad value in {self.table} row {self.ident}, column {column}: expected {expected}",
            "correct that value (for example with the sqlite3 shell) or restore ovpn.db from a backup",
        )

    def text(self, column: str) -> str:
        value = self.row[column]
        if not isinstance(value, str):
            raise self._bad(column, "text")
        return value

    def optional_text(self, column: str) -> str | None:
        return None if self.row[column] is None else self.text(column)

    def integer(self, column: str, low: int | None = None, high: int | None = None) -> int:
        value = self.row[column]
        if type(value) is not int or (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                raise self._bad(column, f"a whole number from {low} to {high}")
            raise self._bad(column, "a whole number" + (f", {low} or more" if low is not None else ""))
        return value

    def optional_integer(self, column: str, low: int | None = None) -> int | None:
        return None if self.row[column] is None else self.integer(column, low)

    def port(self, column: str) -> int:
        return self.integer(column, 1, 65535)

    def flag(self, column: str) -> bool:
        value = self.row[column]
        if type(value) is not int or value not in (0, 1):
            raise self._bad(column, "0 or 1")
        return bool(value)

    def role(self, column: str) -> Role:
        value = self.row[column]
        if value == "vpn":
            return "vpn"
        if value == "proxy":
            return "proxy"
        raise self._bad(column, "vpn or proxy")

    def day(self, column: str) -> date | None:
        value = self.optional_text(column)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self._bad(column, "a date YYYY-MM-DD") from None

    def _json(self, column: str, expected: str) -> object:
        try:
            return json.loads(self.text(column))
        except ValueError:
            raise self._bad(column, expected) from None

    def string_map(self, column: str) -> tuple[tuple[str, str], ...]:
        expected = 'a JSON object of strings, like {"xray": "image:tag"}'
        value = self._json(column, expected)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(column, expected)
        return tuple(sorted(value.items()))

    def string_list(self, column: str) -> tuple[str, ...]:
        expected = 'a JSON list of strings, like ["pilot"]'
        value = self._json(column, expected)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(column, expected)
        return tuple(value)

    def integer_list(self, column: str) -> tuple[int, ...]:
        try:
            return tuple(int(c) for c in self.text(column).split(",") if c)
        except ValueError:
            raise self._bad(column, "whole numbers separated by commas") from None


def _named_row(table: str, row: sqlite3.Row, key: str) -> _Fields:
    """A row named by its key column, or by its id while that is not text."""
    name = row[key]
    return _Fields(table, row, repr(name) if isinstance(name, str) else f"id {row['id']}")


_READERS: dict[Stored, Callable[[_Fields, str], Any]] = {
    "text": _Fields.text,
    "optional_text": _Fields.optional_text,
    "port": _Fields.port,
    "role": _Fields.role,
    "flag": _Fields.flag,
    "string_map": _Fields.string_map,
}


def _column_value(stored: Stored, value: Any) -> object:
    """A field's value as its column holds it (the inverse of the readers above)."""
    if stored == "flag":
        return int(value)
    if stored == "string_map":
        return json.dumps(dict(value), sort_keys=True)
    return value


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """An INSERT of the columns plus created_at and updated_at."""
    names = (*columns, "created_at", "updated_at")
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608


def _update_sql(table: str, columns: tuple[str, ...], key: str) -> str:
    """An UPDATE of the columns plus updated_at, of the row whose key column is the last parameter."""
    assignments = ", ".join(f"{c} = ?" for c in (*columns, "updated_at"))
    return f"UPDATE {table} SET {assignments} WHERE {key} = ?"  # noqa: S608


def did_you_mean(name: str, known: Iterable[str], listing: str) -> str:
    """A hint for a name nobody has: the closest known names (a typo or another case), and the command that lists
    them all."""
    folded = {k.casefold(): k for k in known}
    key = name.casefold()
    close = [key] if key in folded else difflib.get_close_matches(key, folded, n=3, cutoff=0.75)
    close = [folded[c] for c in close]
    return f"did you mean {' or '.join(close)}? see `{listing}`" if close else f"see `{listing}`"


def sealed_sample(conn: sqlite3.Connection) -> tuple[str, str] | None:
    """One encrypted value of the state and its context, to check a key against; None when there is none."""
    row = conn.execute(
        "SELECT name, reality_private_key FROM servers WHERE substr(reality_private_key, 1, ?) = ? LIMIT 1",
        (len(PREFIX), PREFIX),
    ).fetchone()
    if row is not None and isinstance(row[0], str):
        return row[1], _sealed_context("reality_private_key", row[0])
    row = conn.execute(
        "SELECT s.name, ss.name, ss.value FROM server_secrets ss JOIN servers s ON s.id = ss.server_id "
        "WHERE substr(ss.value, 1, ?) = ? LIMIT 1",
        (len(PREFIX), PREFIX),
    ).fetchone()
    if row is not None and isinstance(row[0], str) and isinstance(row[1], str):
        return row[2], _secret_context(row[0], row[1])
    return None


def holds_sealed_values(conn: sqlite3.Connection) -> bool:
    """Whether any text in any table is an encrypted value (enc:v1:...), wherever a later migration put it."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in tables:
        for column in [c[1] for c in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]:
            quoted_table, quoted_column = (f'"{n.replace(chr(34), chr(34) * 2)}"' for n in (table, column))
            hit = conn.execute(
                f"SELECT 1 FROM {quoted_table} WHERE substr({quoted_column}, 1, ?) = ? LIMIT 1",  # noqa: S608
                (len(PREFIX), PREFIX),
            ).fetchone()
            if hit is not None:
                return True
    return False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sealed_context(column: str, name: str) -> str:
    """What a sealed server column is bound to: its column and its server."""
    return f"servers.{column}:{name}"


def _secret_context(server: str, name: str) -> str:
    return f"secret {name} of {server}"


class Repository:
    def __init__(self, conn: sqlite3.Connection, box: SecretBox) -> None:
        self.conn = conn
        self.box = box

    def _missing(self, what: str, name: str, table: str, column: str, listing: str) -> OvpnError:
        """The error for a name that `table` does not hold; its hint offers the closest names it does hold."""
        known = [r[0] for r in self.conn.execute(f"SELECT {column} FROM {table}")]  # noqa: S608
        return OvpnError(f"no {what} named {name!r}", did_you_mean(name, known, listing))

    # servers

    def _server(self, row: sqlite3.Row) -> Server:
        f = _named_row("servers", row, "name")
        name = f.text("name")
        values: dict[str, Any] = {}
        for field in SERVER_FIELDS:
            value = _READERS[field.stored](f, field.name)
            if field.secret:
                value = self.box.open(value, _sealed_context(field.name, name))
            values[field.name] = value
        return Server(**values)

    def _server_values(self, s: Server) -> tuple[object, ...]:
        values: list[object] = []
        for field in SERVER_FIELDS:
            value = getattr(s, field.name)
            if field.secret:
                value = self.box.seal(value, _sealed_context(field.name, s.name))
            values.append(_column_value(field.stored, value))
        return tuple(values)

    def find_server(self, name: str) -> Server | None:
        row = self.conn.execute("SELECT * FROM servers WHERE name = ?", (name,)).fetchone()
        return self._server(row) if row else None

    def server(self, name: str) -> Server:
        found = self.find_server(name)
        if found is None:
            raise self._missing("server", name, "servers", "name", "ovpn server list")
        return found

    def servers(self) -> list[Server]:
        return [self._server(r) for r in self.conn.execute("SELECT * FROM servers ORDER BY name")]

    def add_server(self, server: Server) -> None:
        if self.find_server(server.name) is not None:
            raise OvpnError(f"a server named {server.name!r} already exists", "choose another --name")
        now = _now()
        self.conn.execute(_insert_sql("servers", _SERVER_COLUMNS), (*self._server_values(server), now, now))

    def update_server(self, server: Server) -> None:
        cur = self.conn.execute(
            _update_sql("servers", _SERVER_COLUMNS, "name"),
            (*self._server_values(server), _now(), server.name),
        )
        if cur.rowcount != 1:
            raise OvpnError(f"no server named {server.name!r}", "see `ovpn server list`")

    def remove_server(self, name: str) -> None:
        self.conn.execute("DELETE FROM servers WHERE name = ?", (name,))

    # secrets per server

    def secret(self, server: str, name: str) -> str | None:
        row = self.conn.execute(
            "SELECT ss.value FROM server_secrets ss JOIN servers s ON s.id = ss.server_id "
            "WHERE s.name = ? AND ss.name = ?",
            (server, name),
        ).fetchone()
        if row is None:
            return None
        value = _Fields("server_secrets", row, f"{name!r} of {server!r}").text("value")
        return self.box.open(value, _secret_context(server, name))

    def set_secret(self, server: str, name: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO server_secrets (server_id, name, value) "
            "SELECT id, ?, ? FROM servers WHERE name = ? "
            "ON CONFLICT (server_id, name) DO UPDATE SET value = excluded.value",
            (name, self.box.seal(value, _secret_context(server, name)), server),
        )

    # attachments

    def attachments(self, proxy: str | None = None) -> list[Attachment]:
        sql = (
            "SELECT p.name AS proxy, b.name AS backend, pb.priority FROM proxy_backends pb "
            "JOIN servers p ON p.id = pb.proxy_id JOIN servers b ON b.id = pb.backend_id"
        )
        args: tuple[str, ...] = ()
        if proxy is not None:
            sql += " WHERE p.name = ?"
            args = (proxy,)
        rows = self.conn.execute(sql + " ORDER BY p.name, pb.priority, b.name", args)
        return [self._attachment(r) for r in rows]

    @staticmethod
    def _attachment(row: sqlite3.Row) -> Attachment:
        f = _Fields("proxy_backends", row, f"{row['proxy']!r} -> {row['backend']!r}")
        return Attachment(f.text("proxy"), f.text("backend"), f.integer("priority"))

    def proxies_of(self, backend: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT p.name FROM proxy_backends pb JOIN servers p ON p.id = pb.proxy_id "
            "JOIN servers b ON b.id = pb.backend_id WHERE b.name = ? ORDER BY p.name",
            (backend,),
        )
        return [r[0] for r in rows]

    def pool(self, proxy: str) -> list[PoolMember]:
        return [PoolMember(self.server(a.backend), a.priority) for a in self.attachments(proxy)]

    def attach(self, proxy: str, backend: str, priority: int) -> bool:
        """Insert or update an attachment; True when something changed."""
        before = {(a.backend, a.priority) for a in self.attachments(proxy)}
        self.conn.execute(
            "INSERT INTO proxy_backends (proxy_id, backend_id, priority, created_at) "
            "SELECT p.id, b.id, ?, ? FROM servers p, servers b WHERE p.name = ? AND b.name = ? "
            "ON CONFLICT (proxy_id, backend_id) DO UPDATE SET priority = excluded.priority",
            (priority, _now(), proxy, backend),
        )
        return (backend, priority) not in before

    def detach(self, proxy: str, backend: str) -> bool:
        cur = self.conn.execute(
            "DELETE FROM proxy_backends WHERE proxy_id = (SELECT id FROM servers WHERE name = ?) "
            "AND backend_id = (SELECT id FROM servers WHERE name = ?)",
            (proxy, backend),
        )
        return cur.rowcount > 0

    # deploy revisions

    def start_revision(
        self,
        server: str,
        revision: str,
        bundle_sha256: str,
        operator: str,
        *,
        kind: str = "deploy",
        changes: str = "",
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO deploy_revisions (server_id, revision, bundle_sha256, operator, started_at, result, kind, "
            "changes) SELECT id, ?, ?, ?, ?, 'running', ?, ? FROM servers WHERE name = ?",
            (revision, bundle_sha256, operator, _now(), kind, changes, server),
        )
        return int(cur.lastrowid or 0)

    def finish_revision(self, revision_id: int, result: str, message: str) -> None:
        self.conn.execute(
            "UPDATE deploy_revisions SET result = ?, message = ?, finished_at = ? WHERE id = ?",
            (result, message, _now(), revision_id),
        )

    def deployed_names(self) -> list[str]:
        """The servers with a successful deploy on record (read without opening any secret)."""
        rows = self.conn.execute(
            "SELECT s.name FROM servers s WHERE EXISTS (SELECT 1 FROM deploy_revisions r WHERE r.server_id = s.id "
            "AND r.result IN ('ok', 'unchanged')) ORDER BY s.name"
        )
        return [str(r[0]) for r in rows]

    def revisions(self, server: str, limit: int = 20) -> list[Revision]:
        rows = self.conn.execute(
            "SELECT r.* FROM deploy_revisions r JOIN servers s ON s.id = r.server_id WHERE s.name = ? "
            "ORDER BY r.id DESC LIMIT ?",
            (server, limit),
        )
        return [self._revision(_Fields("deploy_revisions", r, f"id {r['id']}")) for r in rows]

    @staticmethod
    def _revision(f: _Fields) -> Revision:
        return Revision(
            f.text("revision"), f.text("bundle_sha256"), f.text("operator"), f.text("started_at"),
            f.optional_text("finished_at"), f.text("result"), f.text("message"), f.text("kind"), f.text("changes"),
        )  # fmt: skip

    # telegram

    def set_telegram(self, server: str, settings: TelegramSettings) -> None:
        self.conn.execute(
            "INSERT INTO telegram_settings (server_id, owner_user_id, notify_chat_ids, api_base_url, updated_at) "
            "SELECT id, ?, ?, ?, ? FROM servers WHERE name = ? ON CONFLICT (server_id) DO UPDATE SET "
            "owner_user_id = excluded.owner_user_id, notify_chat_ids = excluded.notify_chat_ids, "
            "api_base_url = excluded.api_base_url, updated_at = excluded.updated_at",
            (settings.owner_user_id, ",".join(map(str, settings.notify_chat_ids)), settings.api_base_url, _now(),
             server),
        )  # fmt: skip

    def telegram(self, server: str) -> TelegramSettings | None:
        row = self.conn.execute(
            "SELECT t.* FROM telegram_settings t JOIN servers s ON s.id = t.server_id WHERE s.name = ?",
            (server,),
        ).fetchone()
        if row is None:
            return None
        f = _Fields("telegram_settings", row, f"of {server!r}")
        return TelegramSettings(
            f.integer("owner_user_id"), f.integer_list("notify_chat_ids"), f.text("api_base_url")
        )

    # backups

    def add_backup(self, server: str, remote_path: str, sha256: str, size: int, operator: str) -> None:
        self.conn.execute(
            "INSERT INTO backup_records (server_id, created_at, remote_path, sha256, size_bytes, operator) "
            "SELECT id, ?, ?, ?, ?, ? FROM servers WHERE name = ?",
            (_now(), remote_path, sha256, size, operator, server),
        )

    def backups(self, server: str) -> list[dict[str, object]]:
        rows = self.conn.execute(
            "SELECT b.created_at, b.remote_path, b.sha256, b.size_bytes, b.operator FROM backup_records b "
            "JOIN servers s ON s.id = b.server_id WHERE s.name = ? ORDER BY b.id DESC",
            (server,),
        )
        return [dict(r) for r in rows]

    # users

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        f = _named_row("users", row, "username")
        return User(
            username=f.text("username"),
            uuid=f.text("uuid"),
            email=f.text("email"),
            enabled=f.flag("enabled"),
            expiry=f.day("expiry_date") if row["expiry_date"] != "" else None,
            quota_bytes=f.optional_integer("quota_bytes", 0),
            notes=f.text("notes"),
            tags=f.string_list("tags"),
        )

    def find_user(self, username: str) -> User | None:
        row = self.conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return self._user(row) if row else None

    def user(self, username: str) -> User:
        found = self.find_user(username)
        if found is None:
            raise self._missing("user", username, "users", "username", "ovpn user list")
        return found

    def users(self, tag: str | None = None) -> list[User]:
        found = [self._user(r) for r in self.conn.execute("SELECT * FROM users ORDER BY username")]
        return [u for u in found if tag is None or tag in u.tags]

    def add_user(self, user: User) -> None:
        for column, value in (("username", user.username), ("uuid", user.uuid), ("email", user.email)):
            if self.conn.execute(f"SELECT 1 FROM users WHERE {column} = ?", (value,)).fetchone():  # noqa: S608
                raise OvpnError(
                    f"a user with {column} {value!r} already exists", f"choose another --{column}"
                )
        now = _now()
        self.conn.execute(_insert_sql("users", _USER_COLUMNS), (*self._user_values(user), now, now))

    @staticmethod
    def _user_values(u: User) -> tuple[object, ...]:
        expiry = u.expiry.isoformat() if u.expiry else None
        return (
            u.username,
            u.uuid,
            u.email,
            int(u.enabled),
            expiry,
            u.quota_bytes,
            u.notes,
            json.dumps(u.tags),
        )

    def update_user(self, user: User) -> None:
        self.conn.execute(
            _update_sql("users", _USER_COLUMNS, "username"), (*self._user_values(user), _now(), user.username)
        )

    def remove_user(self, username: str) -> None:
        self.conn.execute("DELETE FROM users WHERE username = ?", (username,))
