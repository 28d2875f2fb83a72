"""The SQLite state file: opening, versioned migrations and transactions that never lose an update.

Every command runs in one transaction. Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
read-modify-write by one `ovpn` process can never interleave with another's; a writer that cannot get the lock
within the timeout gets a clear error instead of a stack trace.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from ovpn.errors import OvpnError

DB_FILE = "ovpn.db"
DEFAULT_LOCK_TIMEOUT = 15.0


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in state/migrations, in order."""
    found = []
    for entry in resources.files("ovpn.state.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n: {versions}")
    return found


def _statements(script: str) -> Iterator[str]:
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise RuntimeError(f"incomplete SQL statement in migration: {pending[:80]!r}")


def _locked(data_dir: Path) -> OvpnError:
    return OvpnError(
        f"the state in {data_dir} is locked by another ovpn process",
        "wait for the other command to finish and run this one again "
        "(OVPN_LOCK_TIMEOUT sets how many seconds to wait)",
    )


class Database:
    def __init__(self, data_dir: Path, lock_timeout: float | None = None) -> None:
        self.data_dir = data_dir
        if lock_timeout is None:
            lock_timeout = float(os.environ.get("OVPN_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT))
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise OvpnError(
                f"cannot create the data directory {data_dir}: {e.strerror}",
                "choose another with --data-dir or OVPN_DATA_DIR",
            ) from None
        self.conn = sqlite3.connect(
            data_dir / DB_FILE, timeout=lock_timeout, isolation_level=None, check_same_thread=False
        )
        self.conn.row_factory = sqlite3.Row
        # One connection for the process: threads (deploy --all, live user changes) take turns with it, since a
        # second BEGIN on the same connection from another thread fails ("transaction within a transaction").
        self._turn = threading.RLock()
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as e:
            self._raise_operational(e)
        self.migrate()

    def _raise_operational(self, e: sqlite3.OperationalError) -> None:
        if "locked" in str(e) or "busy" in str(e):
            raise _locked(self.data_dir) from None
        raise OvpnError(f"the state database failed: {e}", f"check {self.data_dir / DB_FILE}") from None

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        known = migrations()
        with self.write():
            current = self.schema_version()
            if current > len(known):
                raise OvpnError(
                    f"the state in {self.data_dir} has schema version {current}, newer than this ovpn knows "
                    f"({len(known)})",
                    "upgrade ovpn before using this data directory",
                )
            for version, _name, sql in known[current:]:
                for statement in _statements(sql):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write transaction holding the write lock from the start."""
        with self._turn:
            yield from self._write()

    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            self._raise_operational(e)
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self.conn.execute("ROLLBACK")
            self._raise_operational(e)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reading (WAL readers never wait for writers)."""
        with self._turn:
            yield from self._read()

    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN")
        except sqlite3.OperationalError as e:
            self._raise_operational(e)
        try:
            yield self.conn
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
