"""One operation per host at a time: a lock held on the host and in the local data directory.

The host lock is `flock` on a file under the releases directory, taken by a command that keeps running on an
SSH connection of its own until the operation ends: when the operator's process exits or its connection drops,
the command ends and the kernel frees the lock, so a crashed laptop never leaves a host locked for good. Beside
the lock file the holder writes who it is, which operation and since when; a second operation is refused with
that line. The local lock (`flock` on `<data dir>/locks/<server>.lock`) refuses a second operation from the same
data directory before any SSH, and covers hosts that cannot be reached.

Within one process the locks are re-entrant: `server init` holds the host while the deploy it runs takes the
same lock again, and a user change holds every host while its per-host live step takes each one.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ovpn.core.names import RELEASES_DIR
from ovpn.errors import OvpnError
from ovpn.remote.base import Held, Remote, RemoteResult, command_failure

HOST_LOCK = f"{RELEASES_DIR}/.ovpn.lock"
HOST_LOCK_OWNER = f"{RELEASES_DIR}/.ovpn.lock-owner.json"
LOCKED = "locked"
BUSY_EXIT = 75
# Runs on the host under sudo: take the lock without waiting, say who holds it, then keep it until stdin ends.
_HOLD_SCRIPT = (
    'mkdir -p "$1" || exit 1; exec 9>>"$2" || exit 1; flock -n 9 || exit 75; '
    'printf "%s\\n" "$4" > "$3.tmp" && mv -f "$3.tmp" "$3"; echo locked; exec cat > /dev/null'
)

_held: dict[tuple[str, str, str], int] = {}
_held_guard = threading.Lock()


class OperationLocked(OvpnError):
    """Another operation holds the server's lock."""


@dataclass(frozen=True)
class Owner:
    operation: str
    by: str
    pid: int
    since: str

    @classmethod
    def me(cls, operation: str) -> Owner:
        return cls(operation, f"{getpass.getuser()}@{socket.gethostname()}", os.getpid(),
                   datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        try:
            doc = json.loads(text)
            return cls(str(doc["operation"]), str(doc["by"]), int(doc["pid"]), str(doc["since"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        since = self.since.replace("T", " ").replace("Z", " UTC")
        return f"{self.operation} by {self.by} (pid {self.pid}) since {since}"


def busy(server: str, owner: Owner | None, where: str) -> OperationLocked:
    holder = owner.describe() if owner else "another operation (its owner record is unreadable)"
    return OperationLocked(
        f"{server} is busy: {holder}",
        f"wait for it to end, then run again; the lock ({where}) frees itself when that process exits or its SSH "
        "connection drops",
    )


def _enter_again(key: tuple[str, str, str]) -> bool:
    """Count one more entry when this process already holds `key`."""
    with _held_guard:
        if key in _held:
            _held[key] += 1
            return True
        return False


def _enter(key: tuple[str, str, str]) -> None:
    with _held_guard:
        _held[key] = 1


def _leave(key: tuple[str, str, str]) -> None:
    with _held_guard:
        _held[key] -= 1
        if not _held[key]:
            del _held[key]


@contextlib.contextmanager
def _reentrant(key: tuple[str, str, str]) -> Iterator[bool]:
    """Yields whether the caller must take the lock itself (False: this process already holds it)."""
    again = _enter_again(key)
    try:
        yield not again
    finally:
        if again:
            _leave(key)


@contextlib.contextmanager
def local_lock(data_dir: Path, server: str, operation: str) -> Iterator[None]:
    """The data directory's lock on one server (re-entrant in this process)."""
    key = (str(data_dir), server, "local")
    with _reentrant(key) as first:
        if not first:
            yield
            return
        with _locked_file(data_dir, server, operation):
            _enter(key)
            try:
                yield
            finally:
                _leave(key)


@contextlib.contextmanager
def _locked_file(data_dir: Path, server: str, operation: str) -> Iterator[None]:
    folder = data_dir / "locks"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{server}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(
                server, Owner.parse(os.pread(fd, 4096, 0).decode(errors="replace")), str(path)
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (Owner.me(operation).to_json() + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing frees the flock


@contextlib.contextmanager
def local_locks(data_dir: Path, servers: Sequence[str], operation: str) -> Iterator[None]:
    """Every named server's local lock, or none: a busy one refuses the whole operation."""
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(local_lock(data_dir, server, operation))
        yield


def hold_host(remote: Remote, server: str, operation: str) -> Held:
    """Take the host's lock (without waiting) and keep it until the returned handle is released."""
    argv = [
        "sh",
        "-c",
        _HOLD_SCRIPT,
        "sh",
        RELEASES_DIR,
        HOST_LOCK,
        HOST_LOCK_OWNER,
        Owner.me(operation).to_json(),
    ]
    got = remote.hold(argv, ready=LOCKED, sudo=True, timeout=30)
    if not isinstance(got, RemoteResult):
        return got
    if got.returncode == BUSY_EXIT:
        holder = remote.run(["cat", HOST_LOCK_OWNER], sudo=True, check=False, timeout=30)
        raise busy(server, Owner.parse(holder.text) if holder.ok else None, f"{HOST_LOCK} on the host")
    raise command_failure(remote.target, got)


@contextlib.contextmanager
def host_lock(data_dir: Path, remote: Remote, server: str, operation: str) -> Iterator[None]:
    """The host's lock for the length of one operation (re-entrant in this process)."""
    key = (str(data_dir), server, "host")
    with _reentrant(key) as first:
        if not first:
            yield
            return
        held = hold_host(remote, server, operation)
        _enter(key)
        try:
            yield
        finally:
            _leave(key)
            held.release()


@contextlib.contextmanager
def operation_lock(data_dir: Path, remote: Remote, server: str, operation: str) -> Iterator[None]:
    """The server's lock, locally and on the host, for the length of one operation: an operation that runs
    another on the same host (init runs a deploy) takes each once."""
    with local_lock(data_dir, server, operation), host_lock(data_dir, remote, server, operation):
        yield
