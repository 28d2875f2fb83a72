"""Network isolation for the lab (TEST-LAB.md, the network rule).

* `Blackhole`: a root-namespace blackhole route for the lab's subnet, so a stray packet from the root namespace
  towards a test address is dropped instead of routed out. Added before anything else, removed at teardown only
  if this process added it.
* `Controller`: runs programs of this machine (ssh, ansible-playbook, ovpn: the host's file system and venv) inside
  another network namespace, the one of a helper container on the lab network, with `nsenter --net`. Refuses to
  run if that namespace is the root one.
* `isolated_argv`: a fresh, empty network namespace (`unshare --net`) for commands that must not reach anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.procs import LabError


class Blackhole:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.added = False

    def add(self) -> Blackhole:
        existing = subprocess.run(
            ["ip", "route", "show", "exact", self.prefix], capture_output=True, text=True, check=True
        ).stdout
        if "blackhole" in existing:
            return self  # someone (or an earlier crashed run) has it: leave it as it is
        subprocess.run(["ip", "route", "add", "blackhole", self.prefix], capture_output=True, check=True)
        self.added = True
        return self

    def remove(self) -> None:
        if self.added:
            subprocess.run(["ip", "route", "del", "blackhole", self.prefix], capture_output=True, check=False)
            self.added = False


def netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def remove_default_route(pid: int) -> None:
    """Lab namespaces keep only link routes: drop a default route Docker may have added to PID's namespace."""
    ns = f"--net=/proc/{pid}/ns/net"
    routes = subprocess.run(
        ["nsenter", ns, "--", "ip", "route", "show", "default"], capture_output=True, text=True, check=True
    ).stdout
    if routes.strip():
        subprocess.run(
            ["nsenter", ns, "--", "ip", "route", "del", "default"], capture_output=True, check=True
        )


class Controller:
    """The SSH client side of the lab: commands run in the network namespace of process PID (never the root one)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def argv(self, command: Sequence[str]) -> list[str]:
        if not Path(f"/proc/{self.pid}/ns/net").exists():
            raise LabError(f"controller process {self.pid} is gone")
        if netns_inode(self.pid) == netns_inode("self"):
            raise LabError(
                "the controller's network namespace is the root one: refusing to send test traffic"
            )
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *command]

    def run(
        self,
        command: Sequence[str],
        *,
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        input: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run COMMAND in the controller's namespace; text output captured. Bounded by TIMEOUT seconds."""
        proc = subprocess.run(
            self.argv(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise LabError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def tcp_probe(self, address: str, port: int, timeout: float = 3) -> str:
        """One bounded TCP connect from the controller: 'open', 'refused' or 'timeout' (dropped)."""
        script = (
            "import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close(); print('open')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except (TimeoutError, socket.timeout): print('timeout')\n"
            "except OSError as e: print('error', e)\n"
        )
        return self.run(["python3", "-c", script], timeout=timeout + 10).stdout.strip()


def isolated_argv(command: Sequence[str]) -> list[str]:
    """COMMAND in a new network namespace with nothing in it (not even loopback up): it can reach nothing."""
    return ["unshare", "--net", "--", *command]
