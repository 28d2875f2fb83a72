"""A real OpenSSH server on 127.0.0.1 for tests of ovpn's SSH handling: the host key is the test's to choose and
replace, the test's client key is authorized, and every command is forced to `true`, so nothing a test sends runs
on this machine.

    server = LoopbackSshd(work, Processes(work / "logs"))
    server.start(server.host_key("first"))
    ... ssh -p server.port -i server.client_key USER@127.0.0.1 ...
    server.start(server.host_key("second"))      # the same port, another host key
"""

from __future__ import annotations

import getpass
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procs import Proc, Processes, wait_until
from tests.support.waiting import LOOPBACK, free_port, port_open

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd started as root refuses to run without it (systemd makes it on hosts)


def generate_key(path: Path) -> Path:
    """An ed25519 key pair at PATH and PATH.pub (made once)."""
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                       check=True, capture_output=True)  # fmt: skip
    return path


def fingerprint(key: Path) -> str:
    """`TYPE SHA256:...` of a key, as `ssh-keygen -lf` shows it."""
    bits_hash_comment_type = subprocess.run(
        ["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True
    ).stdout.split()
    return f"{bits_hash_comment_type[-1].strip('()')} {bits_hash_comment_type[1]}"


@dataclass
class LoopbackSshd:
    work: Path
    procs: Processes
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    proc: Proc | None = None

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.client_key = generate_key(self.work / "client")
        (self.work / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())

    def host_key(self, name: str) -> Path:
        return generate_key(self.work / f"host-{name}")

    def start(self, host_key: Path) -> None:
        """Serve with HOST_KEY (stopping the server first if it runs), once the port accepts connections."""
        if self.proc is not None:
            self.procs.stop(self.proc)
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        config = self.work / "sshd_config"
        config.write_text(
            f"ListenAddress {LOOPBACK}\nAuthorizedKeysFile {self.work}/authorized_keys\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nForceCommand true\n"
        )
        argv: list[str | Path] = [SSHD, "-D", "-e", "-f", config, "-h", host_key, "-p", str(self.port)]
        proc = self.proc = self.procs.start(f"sshd-{host_key.name}", argv)
        wait_until(
            lambda: port_open(self.port) or not proc.alive(), timeout=10, what=f"sshd on port {self.port}"
        )
        assert proc.alive(), proc.log_text()
