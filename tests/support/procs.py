"""Processes, waits and locks shared by every lab (tests/lab, tests/hostlab, tests/fleetlab) and the loopback
stacks in tests/support.

A process a test starts runs in its own session (its PID is also its process group id), writes to a log file and
is stopped by that PID, never found by name. Every wait is a bounded poll of a condition, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


class LabError(RuntimeError):
    """A lab could not be built or used, or a condition did not come true in time; the message says which."""


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str = "condition", interval: float = 0.1
) -> Any:
    """Poll `condition` until it returns something truthy and return that; raise LabError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------ PIDs


def pid_alive(pid: int) -> bool:
    """Whether PID runs (a zombie or a PID that is gone does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in {"Z", "X"}


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat.rsplit(")", 1)[-1].split()[0]


def pid_cmdline(pid: int) -> list[str]:
    """PID's command line; check it before signalling a PID read from a file (is it still ours?)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def stop_pid(pid: int, timeout: float = 20) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Only call it with a PID this test started."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(LabError):
        wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"PID {pid} to exit")
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    with contextlib.suppress(LabError):
        wait_until(lambda: not pid_alive(pid), timeout=5, what=f"PID {pid} to die")


def stop_child(popen: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop a child this test started (SIGTERM, then SIGKILL after `timeout` seconds) and reap it."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=timeout)


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Proc:
    """A process a test started in its own session, with the log its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        """The log's current size: pass it to `log_since` to read only what the process writes from now on."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Signal this process's own group; escalate to SIGKILL if it does not exit within `timeout`."""
        if not self.alive():
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """Sudden death: SIGKILL, no chance to close connections gracefully."""
        self.stop(signal.SIGKILL)


@dataclass
class Processes:
    """Every process a test started, so that teardown stops exactly those (in reverse order)."""

    log_dir: Path
    started: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Proc:
        """Start ARGV in a session of its own; its output goes to LOG_DIR/NAME.log after a start line."""
        command = [str(a) for a in argv]
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                env=dict(env) if env is not None else None, start_new_session=True,
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        proc.stop(sig)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)


# ------------------------------------------------------------------------------------------ locks


def acquire_lock(path: Path, *, timeout: float, busy: str) -> IO[str]:
    """An exclusive lock on PATH, waited for up to `timeout` seconds (LabError `busy` after that)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w")

    def locked() -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        wait_until(locked, timeout=timeout, what=busy, interval=1)
    except LabError:
        handle.close()
        raise LabError(busy) from None
    return handle


def release_lock(handle: IO[str]) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


@contextlib.contextmanager
def held_lock(path: Path, *, timeout: float, busy: str) -> Iterator[None]:
    handle = acquire_lock(path, timeout=timeout, busy=busy)
    try:
        yield
    finally:
        release_lock(handle)
