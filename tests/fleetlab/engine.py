"""A private Docker engine for the lab: no iptables, no forwarding, no default bridge; started and stopped by us."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import LabError, stop_pid, wait_until
from tests.support.tools import tools_dir

RUN_DIR = Path("/run/ovpn-fleetlab")


@dataclass
class Engine:
    socket: Path
    process: subprocess.Popen[bytes] | None = None

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 600, check: bool = True) -> str:
        proc = subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", *args],
            input=input, capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode(errors="replace")

    def succeeds(self, *args: str, timeout: float = 60) -> bool:
        argv = ["docker", "-H", f"unix://{self.socket}", *args]
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False).returncode == 0

    def alive(self) -> bool:
        if not self.socket.exists():
            return False
        return subprocess.run(["docker", "-H", f"unix://{self.socket}", "version"], capture_output=True,
                              timeout=20, check=False).returncode == 0  # fmt: skip

    def stop(self) -> None:
        """Stop the engine if this process started it (by PID, never by name)."""
        if self.process is None:
            return
        stop_pid(self.process.pid, timeout=60)
        self.process.wait(timeout=30)
        self.process = None


def start_engine() -> Engine:
    """Start (or reuse a running) private engine; its data root persists under the tools dir as an image cache."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    engine = Engine(RUN_DIR / "docker.sock")
    if engine.alive():
        return engine
    data_root = tools_dir() / "fleetlab-docker"
    data_root.mkdir(parents=True, exist_ok=True)
    log = open(RUN_DIR / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon for its lifetime
    engine.process = subprocess.Popen(
        ["dockerd", "--data-root", str(data_root), "--exec-root", str(RUN_DIR / "exec"),
         "-H", f"unix://{engine.socket}", "--pidfile", str(RUN_DIR / "dockerd.pid"),
         "--iptables=false", "--ip-forward=false", "--bridge=none"],
        stdout=log, stderr=log,
    )  # fmt: skip
    process = engine.process

    def started() -> bool:
        if process.poll() is not None:
            raise LabError(f"dockerd exited with {process.returncode}; see {RUN_DIR / 'dockerd.log'}")
        return engine.alive()

    wait_until(started, timeout=60, what=f"dockerd (see {RUN_DIR / 'dockerd.log'})", interval=0.2)
    return engine
