"""The SQLite state file: opening, versioned migrations and transactions that never lose an update.

Every command runs in one transaction. Writers take SQLite's write lock up front (`BEGIN IMMEDIATE`), so a
read-modify-write by one `ovpn` process can never interleave with another's; a writer that cannot get the lock
within the timeout gets a clear error instead of a stack trace. Readers never take that lock: the file is in WAL
mode, where a reader sees the last committed snapshot while a writer works, and opening the file migrates only when
its schema is behind (checked with a plain read first, then again under the write lock).

A new state file is built beside its final name and linked into place complete, so `ovpn.db` is never seen empty;
an empty `ovpn.db` is therefore damage (a failed copy, a full disk) and is refused rather than taken for a new
fleet. Every state file is 0600, whatever the umask.

A data directory that is not writable (a read-only mount, a 0500 folder) is opened read-only, so reading commands
still work there. In WAL mode a read-only reader needs the `-shm` index: when it exists, the file is opened with
`mode=ro` and SQLite reads the WAL through it; when neither it nor a non-empty WAL exists (the last writer closed
cleanly, so every commit is already in the main file) and it cannot be created, the file is opened `immutable=1`. That is sound because a writer
would have to create the WAL in that same folder; a more privileged user writing there meanwhile is not guarded
against.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ovpn.errors import InvalidInput, StateError, StateLocked

DB_FILE = "ovpn.db"
DEFAULT_LOCK_TIMEOUT = 15.0
LOCK_TIMEOUT_ENV = "OVPN_LOCK_TIMEOUT"
_SIDE_FILES = ("-wal", "-shm")


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


def lock_timeout_from(env: Mapping[str, str]) -> float:
    """Seconds a writer waits for the write lock: $OVPN_LOCK_TIMEOUT, a finite number >= 0."""
    raw = env.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput(
            f"{LOCK_TIMEOUT_ENV} must be a number of seconds (0 or more), not {raw!r}",
            f"unset it for the default ({DEFAULT_LOCK_TIMEOUT:g} s) or set it to e.g. 30",
        )
    return seconds


def _locked(data_dir: Path) -> StateLocked:
    return StateLocked(
        f"the state in {data_dir} is locked by another ovpn process",
        "wait for the other command to finish and run this one again "
        "(OVPN_LOCK_TIMEOUT sets how many seconds to wait)",
    )


def _schema(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """What a schema version must look like: each table's columns, and the names of its indexes and triggers."""
    objects = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger', 'view') "
        "AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {
        f"{kind} {name}": tuple(c[1] for c in conn.execute("SELECT * FROM pragma_table_info(?)", (name,)))
        if kind == "table"
        else ()
        for kind, name in objects
    }


def _expected_schema(version: int) -> dict[str, tuple[str, ...]]:
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for _, _, sql in migrations()[:version]:
            for statement in _statements(sql):
                scratch.execute(statement)
        return _schema(scratch)
    finally:
        scratch.close()


def tighten(path: Path) -> None:
    """Make an existing state file 0600 when it is ours and looser (older ovpn, a copy, a permissive umask)."""
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            path.chmod(0o600)


class Database:
    def __init__(self, data_dir: Path, lock_timeout: float | None = None) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DB_FILE
        timeout = lock_timeout_from(os.environ) if lock_timeout is None else lock_timeout
        self._checked = False
        # The schema version this process found before migrating it, or None when it was already the latest.
        self.migrated_from: int | None = None
        # One connection for the process: threads (deploy --all, live user changes) take turns with it, since a
        # second BEGIN on the same connection from another thread fails ("transaction within a transaction").
        self._turn = threading.RLock()
        self._ensure_dir()
        if self.path.is_dir():
            raise StateError(
                f"{self.path} is a directory, not the state file", "move it away or choose another --data-dir"
            )
        if not self.path.exists():
            self._create(timeout)
        self.read_only = not (os.access(data_dir, os.W_OK) and os.access(self.path, os.W_OK))
        self._refuse_empty()
        if not self.read_only:
            for suffix in ("", *_SIDE_FILES):
                tighten(self.path.with_name(DB_FILE + suffix))
        self.conn = self._connect(timeout)
        self.migrate()

    # opening

    def _ensure_dir(self) -> None:
        if self.data_dir.is_dir():
            return
        try:
            self.data_dir.mkdir(mode=0o700, parents=True)
            self.data_dir.chmod(0o700)
        except FileExistsError:
            if not self.data_dir.is_dir():
                raise StateError(
                    f"the data directory {self.data_dir} is a file",
                    "choose another with --data-dir or OVPN_DATA_DIR",
                ) from None
        except OSError as e:
            raise StateError(
                f"cannot create the data directory {self.data_dir}: {e.strerror}",
                "choose another with --data-dir or OVPN_DATA_DIR",
            ) from None

    def _create(self, timeout: float) -> None:
        """Build a new state file at the latest schema beside its name, then link it in only if still absent."""
        scratch = self.path.with_name(f".{DB_FILE}.new-{os.getpid()}-{threading.get_ident()}")
        try:
            os.close(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(scratch, 0o600)
            conn = sqlite3.connect(scratch, timeout=timeout, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for version, _name, sql in migrations():
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version}")
                conn.execute("COMMIT")
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
                os.link(scratch, self.path)
        except (OSError, sqlite3.Error) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            raise StateError(
                f"cannot create the state file {self.path}: {reason}",
                "check that the data directory is writable and the disk has room",
            ) from None
        finally:
            for leftover in (scratch, *(scratch.with_name(scratch.name + s) for s in _SIDE_FILES)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _refuse_empty(self) -> None:
        wal = self.path.with_name(DB_FILE + "-wal")
        try:
            empty = self.path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0)
        except OSError as e:
            raise StateError(
                f"cannot read the state file {self.path}: {e.strerror}", "check its permissions"
            ) from None
        if empty:
            raise StateError(
                f"the state file {self.path} is empty (0 bytes), not a fleet",
                "restore ovpn.db from a backup; if this data directory never held a fleet, delete the empty file",
            )

    def _connect(self, timeout: float) -> sqlite3.Connection:
        target: str | Path = self.path
        uri = False
        if self.read_only:
            wal, shm = (self.path.with_name(DB_FILE + s) for s in _SIDE_FILES)
            settled = not (wal.exists() and wal.stat().st_size > 0) and not shm.exists()
            immutable = settled and not os.access(self.data_dir, os.W_OK)
            target = f"file:{quote(str(self.path))}?mode=ro" + ("&immutable=1" if immutable else "")
            uri = True
        try:
            conn = sqlite3.connect(
                target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise self._failure(e) from None
        return conn

    # schema

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema to the latest version; a plain read when it already is (no write lock taken)."""
        known = migrations()
        try:
            current = self.schema_version()
        except sqlite3.Error as e:
            raise self._failure(e) from None
        self._refuse_newer(current, len(known))
        if current == len(known):
            return
        if self.read_only:
            raise StateError(
                f"the state in {self.data_dir} needs upgrading from schema {current} to {len(known)}, "
                "but it is read-only",
                "run any ovpn command once where the data directory is writable",
            )
        with self.write():
            current = self.schema_version()
            self._refuse_newer(current, len(known))
            self._refuse_mismatch(current)
            for version, name, sql in known[current:]:
                try:
                    for statement in _statements(sql):
                        self.conn.execute(statement)
                except sqlite3.OperationalError as e:
                    raise StateError(
                        f"migration {name} failed on the state in {self.data_dir}: {e}",
                        "restore ovpn.db from a backup; nothing was changed",
                    ) from None
                self.conn.execute(f"PRAGMA user_version = {version}")
            self.migrated_from = current

    def _refuse_newer(self, current: int, latest: int) -> None:
        if current > latest:
            raise StateError(
                f"the state in {self.data_dir} has schema version {current}, newer than this ovpn knows ({latest})",
                "upgrade ovpn before using this data directory",
            )
        if current < 0:
            raise StateError(
                f"the state in {self.data_dir} has an invalid schema version {current}",
                "restore ovpn.db from a backup",
            )

    def _refuse_mismatch(self, current: int) -> None:
        """Before migrating from `current`, check the tables are what `current` means (not a version moved back)."""
        if _schema(self.conn) != _expected_schema(current):
            raise StateError(
                f"the state in {self.data_dir} says schema version {current}, but its tables are not that version's "
                "(the version was moved back or the tables edited)",
                "restore ovpn.db from a backup; do not set PRAGMA user_version by hand",
            )

    # transactions

    def _failure(self, e: sqlite3.Error) -> StateError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return _locked(self.data_dir)
        if "disk is full" in text:
            return StateError(
                f"the disk holding {self.path} is full; nothing was changed",
                "free some space and run it again",
            )
        if "readonly" in text or "read-only" in text:
            return self._read_only_error()
        if isinstance(e, sqlite3.DatabaseError) and not isinstance(
            e, sqlite3.OperationalError | sqlite3.IntegrityError
        ):
            return StateError(
                f"the state file {self.path} is damaged: {text}",
                "restore ovpn.db from a backup (with its -wal file, if there is one)",
            )
        if isinstance(e, sqlite3.IntegrityError):
            return StateError(
                f"the state refused the change: {text}", "nothing was changed; check the values given"
            )
        return StateError(f"the state database failed: {text}", f"check {self.path}")

    def _read_only_error(self) -> StateError:
        return StateError(
            f"the state in {self.data_dir} is read-only, so this command cannot change it",
            "run it where the data directory and ovpn.db are writable",
        )

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back by itself on a full disk)."""
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write transaction holding the write lock from the start."""
        if self.read_only:
            raise self._read_only_error()
        with self._turn:
            yield from self._write()

    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            if not self._checked:
                # Once per process, before the first change: a damaged file is refused instead of written into.
                problems = [r[0] for r in self.conn.execute("PRAGMA quick_check(3)")]
                if problems != ["ok"]:
                    self._rollback()
                    raise StateError(
                        f"the state file {self.path} is damaged: {'; '.join(problems)}",
                        "restore ovpn.db from a backup (with its -wal file, if there is one)",
                    )
                self._checked = True
        except sqlite3.Error as e:
            self._rollback()
            raise self._failure(e) from None
        try:
            yield self.conn
        except sqlite3.Error as e:
            self._rollback()
            if isinstance(e, sqlite3.ProgrammingError | sqlite3.NotSupportedError):
                raise
            raise self._failure(e) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            raise self._failure(e) from None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reading (WAL readers never wait for writers)."""
        with self._turn:
            yield from self._read()

    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            self.conn.execute("BEGIN")
        except sqlite3.Error as e:
            raise self._failure(e) from None
        try:
            yield self.conn
        except sqlite3.Error as e:
            if isinstance(e, sqlite3.ProgrammingError | sqlite3.NotSupportedError):
                raise
            raise self._failure(e) from None
        finally:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
