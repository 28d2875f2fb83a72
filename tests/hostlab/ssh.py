"""SSH client helpers for lab hosts: a key pair, client options that ignore the user's config, bounded waits."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.hostlab.net import Controller
from tests.support.procs import LabError, wait_until


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: str

    @property
    def public_path(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")


def generate_keypair(directory: Path, name: str = "id_ed25519", comment: str = "hostlab") -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    if not private.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
            check=True,
            capture_output=True,
        )
    return KeyPair(private, private.with_name(name + ".pub").read_text().strip())


def client_options(known_hosts: Path, control_dir: Path | None = None) -> list[str]:
    """`-o` options for ssh: no user config, a known_hosts file of the lab's own, batch mode, short timeouts.

    With CONTROL_DIR, connections are multiplexed through sockets there (close them with `close_masters`).
    """
    options = [
        "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        "-o", "ServerAliveInterval=10",
        "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    if control_dir is not None:
        options += [
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=120s",
            "-o",
            f"ControlPath={control_dir}/%C",
        ]
    return options


def ssh_argv(
    address: str,
    user: str,
    command: str,
    *,
    key: Path | None,
    known_hosts: Path,
    port: int = 22,
    control_dir: Path | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    argv = ["ssh", *client_options(known_hosts, control_dir), "-p", str(port), *extra]
    if key is not None:
        argv += ["-i", str(key)]
    return [*argv, f"{user}@{address}", command]


def wait_for_ssh(controller: Controller, address: str, port: int = 22, timeout: float = 60) -> str:
    """Poll `ssh-keyscan` from the controller until sshd answers; returns its host key lines. Bounded."""
    last = ""

    def host_keys() -> str:
        nonlocal last
        proc = controller.run(["ssh-keyscan", "-T", "2", "-p", str(port), address], timeout=10)
        last = proc.stderr.strip()
        return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else ""

    try:
        return str(wait_until(host_keys, timeout=timeout, what=f"sshd on {address}:{port}", interval=0.5))
    except LabError:
        raise LabError(f"sshd on {address}:{port} did not answer within {timeout:.0f} s ({last})") from None


def close_masters(controller: Controller, control_dir: Path) -> None:
    """Stop multiplexing masters left in CONTROL_DIR (`ssh -O exit`), each bounded."""
    if not control_dir.is_dir():
        return
    for socket in control_dir.iterdir():
        if socket.is_socket():
            controller.run(
                ["ssh", "-F", "/dev/null", "-o", f"ControlPath={socket}", "-O", "exit", "lab-master"],
                timeout=10,
            )
