"""Reading and writing the domain records; callers hold a transaction from `Database`."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ovpn.core.model import Attachment, PoolMember, Server, TelegramSettings, User
from ovpn.errors import OvpnError
from ovpn.state.secrets import SecretBox

_SERVER_COLUMNS = (
    "name", "role", "host", "domain", "port", "ssh_user", "ssh_port", "ssh_identity", "xray_version",
    "reality_private_key", "reality_public_key", "reality_short_id", "reality_server_name", "reality_target",
    "proxy_preset", "relay_uuid", "images", "enabled", "agent_cert_file",
)  # fmt: skip


@dataclass(frozen=True)
class Revision:
    revision: str
    bundle_sha256: str
    operator: str
    started_at: str
    finished_at: str | None
    result: str
    message: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _private_key_context(name: str) -> str:
    return f"servers.reality_private_key:{name}"


class Repository:
    def __init__(self, conn: sqlite3.Connection, box: SecretBox) -> None:
        self.conn = conn
        self.box = box

    # servers

    def _server(self, row: sqlite3.Row) -> Server:
        return Server(
            name=row["name"],
            role=row["role"],
            host=row["host"],
            domain=row["domain"],
            port=row["port"],
            ssh_user=row["ssh_user"],
            ssh_port=row["ssh_port"],
            ssh_identity=row["ssh_identity"],
            xray_version=row["xray_version"],
            reality_private_key=self.box.open(row["reality_private_key"], _private_key_context(row["name"])),
            reality_public_key=row["reality_public_key"],
            reality_short_id=row["reality_short_id"],
            reality_server_name=row["reality_server_name"],
            reality_target=row["reality_target"],
            proxy_preset=row["proxy_preset"],
            relay_uuid=row["relay_uuid"],
            images=tuple(sorted(json.loads(row["images"]).items())),
            enabled=bool(row["enabled"]),
            agent_cert_file=row["agent_cert_file"],
        )

    def _server_values(self, s: Server) -> tuple[object, ...]:
        return (
            s.name, s.role, s.host, s.domain, s.port, s.ssh_user, s.ssh_port, s.ssh_identity, s.xray_version,
            self.box.seal(s.reality_private_key, _private_key_context(s.name)), s.reality_public_key,
            s.reality_short_id, s.reality_server_name, s.reality_target, s.proxy_preset, s.relay_uuid,
            json.dumps(dict(s.images), sort_keys=True), int(s.enabled), s.agent_cert_file,
        )  # fmt: skip

    def find_server(self, name: str) -> Server | None:
        row = self.conn.execute("SELECT * FROM servers WHERE name = ?", (name,)).fetchone()
        return self._server(row) if row else None

    def server(self, name: str) -> Server:
        found = self.find_server(name)
        if found is None:
            raise OvpnError(f"no server named {name!r}", "see `ovpn server list`")
        return found

    def servers(self) -> list[Server]:
        return [self._server(r) for r in self.conn.execute("SELECT * FROM servers ORDER BY name")]

    def add_server(self, server: Server) -> None:
        if self.find_server(server.name) is not None:
            raise OvpnError(f"a server named {server.name!r} already exists", "choose another --name")
        now = _now()
        placeholders = ", ".join("?" * (len(_SERVER_COLUMNS) + 2))
        self.conn.execute(
            f"INSERT INTO servers ({', '.join(_SERVER_COLUMNS)}, created_at, updated_at) VALUES ({placeholders})",  # noqa: S608
            (*self._server_values(server), now, now),
        )

    def update_server(self, server: Server) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _SERVER_COLUMNS)
        cur = self.conn.execute(
            f"UPDATE servers SET {assignments}, updated_at = ? WHERE name = ?",  # noqa: S608
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
        return self.box.open(row["value"], f"secret {name} of {server}") if row else None

    def set_secret(self, server: str, name: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO server_secrets (server_id, name, value) "
            "SELECT id, ?, ? FROM servers WHERE name = ? "
            "ON CONFLICT (server_id, name) DO UPDATE SET value = excluded.value",
            (name, self.box.seal(value, f"secret {name} of {server}"), server),
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
        return [Attachment(r["proxy"], r["backend"], r["priority"]) for r in rows]

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

    def start_revision(self, server: str, revision: str, bundle_sha256: str, operator: str) -> int:
        cur = self.conn.execute(
            "INSERT INTO deploy_revisions (server_id, revision, bundle_sha256, operator, started_at, result) "
            "SELECT id, ?, ?, ?, ?, 'running' FROM servers WHERE name = ?",
            (revision, bundle_sha256, operator, _now(), server),
        )
        return int(cur.lastrowid or 0)

    def finish_revision(self, revision_id: int, result: str, message: str) -> None:
        self.conn.execute(
            "UPDATE deploy_revisions SET result = ?, message = ?, finished_at = ? WHERE id = ?",
            (result, message, _now(), revision_id),
        )

    def revisions(self, server: str, limit: int = 20) -> list[Revision]:
        rows = self.conn.execute(
            "SELECT r.* FROM deploy_revisions r JOIN servers s ON s.id = r.server_id WHERE s.name = ? "
            "ORDER BY r.id DESC LIMIT ?",
            (server, limit),
        )
        return [
            Revision(r["revision"], r["bundle_sha256"], r["operator"], r["started_at"], r["finished_at"],
                     r["result"], r["message"])
            for r in rows
        ]  # fmt: skip

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
        chats = tuple(int(c) for c in row["notify_chat_ids"].split(",") if c)
        return TelegramSettings(row["owner_user_id"], chats, row["api_base_url"])

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
        return User(
            username=row["username"],
            uuid=row["uuid"],
            email=row["email"],
            enabled=bool(row["enabled"]),
            expiry=date.fromisoformat(row["expiry_date"]) if row["expiry_date"] else None,
            quota_bytes=row["quota_bytes"],
            notes=row["notes"],
            tags=tuple(json.loads(row["tags"])),
        )

    def find_user(self, username: str) -> User | None:
        row = self.conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        return self._user(row) if row else None

    def user(self, username: str) -> User:
        found = self.find_user(username)
        if found is None:
            raise OvpnError(f"no user named {username!r}", "see `ovpn user list`")
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
        self.conn.execute(
            "INSERT INTO users (username, uuid, email, enabled, expiry_date, quota_bytes, notes, tags, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*self._user_values(user), now, now),
        )

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
            "UPDATE users SET username = ?, uuid = ?, email = ?, enabled = ?, expiry_date = ?, quota_bytes = ?, "
            "notes = ?, tags = ?, updated_at = ? WHERE username = ?",
            (*self._user_values(user), _now(), user.username),
        )

    def remove_user(self, username: str) -> None:
        self.conn.execute("DELETE FROM users WHERE username = ?", (username,))
