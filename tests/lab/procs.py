"""Processes the lab starts: each one inside a namespace, tracked by PID, stopped by PID.

Nothing here finds processes by name. A process is started in its own session (so its PID is also its process
group id), its output goes to a log file, and `stop` signals exactly that group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class LabError(RuntimeError):
    """The lab could not be built or a condition did not come true in time."""


def wait_until(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> object:
    """Poll `condition` until it returns something truthy; raise LabError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30, **kwargs: object) -> str:
    """Run a short command to completion and return its stdout (stderr is in the error when it fails)."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return str(done.stdout)


def netns_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    """`ip netns exec` also bind-mounts /etc/netns/NAME/* over /etc, so the namespace sees its own hosts file."""
    return ["ip", "netns", "exec", namespace, *argv]


@dataclass
class Proc:
    name: str
    namespace: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    started: float = field(default_factory=time.time)

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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
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
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """Sudden death: SIGKILL, no chance to close connections gracefully."""
        self.stop(signal.SIGKILL)


class Processes:
    """Every process the lab started, so teardown can stop exactly those."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []

    def start(
        self,
        name: str,
        namespace: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                netns_argv(namespace, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        proc = Proc(name, namespace, list(argv), log, popen)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.started.clear()
