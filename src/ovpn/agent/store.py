"""The agent's own SQLite database (`<db-path>/stats.db`, in the `ovpn-agent-data` volume).

* `counter_state`: the last Xray counter value the agent accounted for, per counter name, plus (in `meta`) the
  Xray process those positions belong to. Usage and positions change only together, in one transaction.
* `traffic_hourly`, `traffic_daily`, `traffic_total`: usage per email (UTC hours and days).
* `user_policy`: the operator's users as the CLI last synced them (replaced wholesale on sync).
* `quota_state`: per user, whether the quota blocked them and the last manual reset.
* `meta`: small key/value facts (last collection, last counter reset, Xray generation).

One connection, serialised by a lock: the collector thread and the HTTP threads share it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ovpn.agent.counters import parse_user_counter
from ovpn.core.model import DEFAULT_QUOTA_BYTES, MAX_QUOTA_BYTES

DB_NAME = "stats.db"
WINDOW_DAYS = 30
HOURLY_RETENTION_DAYS = 35

_SCHEMA = [
    """
    CREATE TABLE counter_state (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE traffic_hourly (
        email TEXT NOT NULL,
        hour INTEGER NOT NULL,
        up INTEGER NOT NULL DEFAULT 0,
        down INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (email, hour)
    ) WITHOUT ROWID;
    CREATE TABLE traffic_daily (
        email TEXT NOT NULL,
        day TEXT NOT NULL,
        up INTEGER NOT NULL DEFAULT 0,
        down INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (email, day)
    ) WITHOUT ROWID;
    CREATE INDEX traffic_daily_by_day ON traffic_daily (day, email);
    CREATE TABLE traffic_total (
        email TEXT PRIMARY KEY,
        up INTEGER NOT NULL DEFAULT 0,
        down INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE TABLE user_policy (
        email TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        uuid TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        expiry TEXT,
        quota_bytes INTEGER,
        updated_at REAL NOT NULL
    );
    CREATE TABLE quota_state (
        email TEXT PRIMARY KEY,
        blocked INTEGER NOT NULL DEFAULT 0,
        blocked_at REAL,
        reset_at REAL,
        reset_day TEXT,
        reset_offset INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
    """,
]


def day_of(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


def hour_of(moment: float) -> int:
    return int(moment // 3600) * 3600


def window_start_day(now: float) -> str:
    """The first UTC day of the rolling quota window: the last WINDOW_DAYS days, today included."""
    return (datetime.fromtimestamp(now, UTC).date() - timedelta(days=WINDOW_DAYS - 1)).isoformat()


def expiry_cutoff(expiry: str | None) -> float | None:
    """A user is active through 23:59:59 UTC of the expiry date: the cutoff is the next day's 00:00 UTC."""
    if expiry is None:
        return None
    return datetime.combine(
        date.fromisoformat(expiry) + timedelta(days=1), datetime.min.time(), UTC
    ).timestamp()


EXPIRING_SECONDS = 2 * 86400


def expiring_soon(expiry: str | None, now: float) -> bool:
    """Whether a user with this expiry date expires within two days from `now` (and has not expired yet)."""
    cutoff = expiry_cutoff(expiry)
    return cutoff is not None and now < cutoff and cutoff - now <= EXPIRING_SECONDS


@dataclass(frozen=True)
class Policy:
    email: str
    username: str
    uuid: str
    enabled: bool
    expiry: str | None
    quota_bytes: int | None

    def effective_quota(self, default: int) -> int:
        return self.quota_bytes if self.quota_bytes else default

    def expired(self, now: float) -> bool:
        cutoff = expiry_cutoff(self.expiry)
        return cutoff is not None and now >= cutoff

    def active(self, now: float) -> bool:
        return self.enabled and not self.expired(now)


@dataclass(frozen=True)
class QuotaState:
    blocked: bool
    blocked_at: float | None
    reset_at: float | None


@dataclass(frozen=True)
class CycleWrite:
    """What one collection writes: the counters as read, and whether they belong to a new Xray process."""

    counters: Mapping[str, int]
    generation: str
    fresh: bool
    now: float


@dataclass(frozen=True)
class CycleOutcome:
    deltas: dict[tuple[str, str], int]
    counter_resets: int
    users_seen: int


class Store:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(_SCHEMA[version:], start=version + 1):
                self._db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed when the block ends, rolled back on any exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, tuple(params)).fetchall())

    # ------------------------------------------------------------------ meta

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT v FROM meta WHERE k = ?", (key,))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (key, value)
        )

    # ------------------------------------------------------------------ the collection write

    def write_cycle(self, cycle: CycleWrite, fault: Callable[[str], None] | None = None) -> CycleOutcome:
        """Account one read of the counters: usage deltas and the new counter positions in ONE transaction.

        With `fresh` (the counters come from an Xray process the stored positions do not belong to) every value
        is new traffic. Otherwise the delta is value - position, or the value itself when the counter went down
        (Xray or someone reset it). `fault` is called inside the transaction (tests inject failed writes there).
        """
        hour, day = hour_of(cycle.now), day_of(cycle.now)
        with self.transaction() as db:
            had_generation = (
                db.execute("SELECT 1 FROM meta WHERE k = 'xray_generation'").fetchone() is not None
            )
            positions = (
                {}
                if cycle.fresh
                else {str(n): int(v) for n, v in db.execute("SELECT name, value FROM counter_state")}
            )
            deltas: dict[tuple[str, str], int] = {}
            resets = 0
            moved: list[tuple[str, int, float]] = []
            for name, value in cycle.counters.items():
                key = parse_user_counter(name)
                if key is None:
                    continue
                previous = positions.get(name)
                if previous is None or value < previous:
                    if previous is not None:
                        resets += 1
                    delta = value
                else:
                    delta = value - previous
                if previous != value:
                    moved.append((name, value, cycle.now))
                if delta:
                    deltas[key] = deltas.get(key, 0) + delta
            per_user: dict[str, list[int]] = {}
            for (email, direction), delta in deltas.items():
                pair = per_user.setdefault(email, [0, 0])
                pair[0 if direction == "uplink" else 1] += delta
            rows = [(email, up, down) for email, (up, down) in per_user.items()]
            db.executemany(
                "INSERT INTO traffic_hourly (email, hour, up, down) VALUES (?, ?, ?, ?) ON CONFLICT (email, hour) "
                "DO UPDATE SET up = up + excluded.up, down = down + excluded.down",
                [(e, hour, u, d) for e, u, d in rows],
            )
            db.executemany(
                "INSERT INTO traffic_daily (email, day, up, down) VALUES (?, ?, ?, ?) ON CONFLICT (email, day) "
                "DO UPDATE SET up = up + excluded.up, down = down + excluded.down",
                [(e, day, u, d) for e, u, d in rows],
            )
            if fault is not None:
                fault("usage-written")
            db.executemany(
                "INSERT INTO traffic_total (email, up, down, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (email) "
                "DO UPDATE SET up = up + excluded.up, down = down + excluded.down, updated_at = excluded.updated_at",
                [(e, u, d, cycle.now) for e, u, d in rows],
            )
            if cycle.fresh:
                db.execute("DELETE FROM counter_state")
            db.executemany(
                "INSERT INTO counter_state (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                moved,
            )
            if fault is not None:
                fault("positions-written")
            self.set_meta(db, "xray_generation", cycle.generation)
            self.set_meta(db, "last_collect_at", repr(cycle.now))
            if resets or (cycle.fresh and had_generation):
                self.set_meta(db, "last_reset_at", repr(cycle.now))
        users_seen = len({key[0] for key in map(parse_user_counter, cycle.counters) if key is not None})
        return CycleOutcome(deltas, resets, users_seen)

    def prune(self, now: float) -> None:
        """Drop hourly rows older than the retention (daily and total rows stay)."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM traffic_hourly WHERE hour < ?", (hour_of(now) - HOURLY_RETENTION_DAYS * 86400,)
            )

    # ------------------------------------------------------------------ usage

    def totals(self) -> dict[str, tuple[int, int]]:
        return {
            str(e): (int(u), int(d)) for e, u, d in self.query("SELECT email, up, down FROM traffic_total")
        }

    def daily(self, day: str) -> dict[str, tuple[int, int]]:
        rows = self.query("SELECT email, up, down FROM traffic_daily WHERE day = ?", (day,))
        return {str(e): (int(u), int(d)) for e, u, d in rows}

    def window_usage(self, now: float) -> dict[str, int]:
        """Bytes (up + down) per email in the rolling window, counting only what came after a manual reset."""
        start = window_start_day(now)
        usage = {
            str(e): int(b)
            for e, b in self.query(
                "SELECT email, SUM(up + down) FROM traffic_daily WHERE day >= ? GROUP BY email", (start,)
            )
        }
        resets = self.query(
            "SELECT email, reset_day, reset_offset FROM quota_state WHERE reset_day IS NOT NULL AND reset_day >= ?",
            (start,),
        )
        for email, reset_day, offset in resets:
            after = self.query(
                "SELECT COALESCE(SUM(up + down), 0) FROM traffic_daily WHERE email = ? AND day >= ?",
                (email, reset_day),
            )[0][0]
            usage[str(email)] = max(0, int(after) - int(offset))
        return usage

    # ------------------------------------------------------------------ policy and quota state

    def policies(self) -> dict[str, Policy]:
        rows = self.query("SELECT email, username, uuid, enabled, expiry, quota_bytes FROM user_policy")
        return {
            str(r[0]): Policy(str(r[0]), str(r[1]), str(r[2]), bool(r[3]), r[4] and str(r[4]),
                              None if r[5] is None else int(r[5]))
            for r in rows
        }  # fmt: skip

    def replace_policies(self, policies: Iterable[Policy], default_quota: int | None, now: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM user_policy")
            db.executemany(
                "INSERT INTO user_policy (email, username, uuid, enabled, expiry, quota_bytes, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.email, p.username, p.uuid, int(p.enabled), p.expiry, p.quota_bytes, now)
                    for p in policies
                ],
            )
            db.execute("DELETE FROM quota_state WHERE email NOT IN (SELECT email FROM user_policy)")
            if default_quota is not None:
                self.set_meta(db, "default_quota_bytes", str(default_quota))

    def update_quotas(self, quotas: Mapping[str, int | None], default_quota: int | None, now: float) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE user_policy SET quota_bytes = ?, updated_at = ? WHERE email = ?",
                [(q, now, e) for e, q in quotas.items()],
            )
            if default_quota is not None:
                self.set_meta(db, "default_quota_bytes", str(default_quota))

    def default_quota(self) -> int:
        """The synced default; one stored before quotas were bounded reads as the bound."""
        value = self.meta("default_quota_bytes")
        return min(int(value), MAX_QUOTA_BYTES) if value else DEFAULT_QUOTA_BYTES

    def quota_states(self) -> dict[str, QuotaState]:
        rows = self.query("SELECT email, blocked, blocked_at, reset_at FROM quota_state")
        return {str(e): QuotaState(bool(b), a, r) for e, b, a, r in rows}

    def set_blocked(self, email: str, blocked: bool, now: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO quota_state (email, blocked, blocked_at) VALUES (?, ?, ?) ON CONFLICT (email) "
                "DO UPDATE SET blocked = excluded.blocked, blocked_at = excluded.blocked_at",
                (email, int(blocked), now if blocked else None),
            )

    def reset_quota(self, email: str, now: float) -> None:
        """Usage counts from now on: the bytes already counted today are remembered and subtracted."""
        day = day_of(now)
        with self.transaction() as db:
            row = db.execute(
                "SELECT COALESCE(SUM(up + down), 0) FROM traffic_daily WHERE email = ? AND day = ?",
                (email, day),
            ).fetchone()
            db.execute(
                "INSERT INTO quota_state (email, blocked, blocked_at, reset_at, reset_day, reset_offset) "
                "VALUES (?, 0, NULL, ?, ?, ?) ON CONFLICT (email) DO UPDATE SET blocked = 0, blocked_at = NULL, "
                "reset_at = excluded.reset_at, reset_day = excluded.reset_day, reset_offset = excluded.reset_offset",
                (email, now, day, int(row[0])),
            )


def now_seconds() -> float:
    return time.time()
