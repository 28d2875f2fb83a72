"""What ops need from a connection to a host, whatever carries it: `Ssh` on real hosts, a scripted fake in tests.

Everything that decides (deploy, rollback, doctor, monitor) takes a `Remote`, so its decisions can be tested
against recorded host answers without SSH.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from ovpn.errors import RemoteCommandFailed

DEFAULT_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int = 22
    user: str = "root"
    identity: str | None = None
    name: str = ""  # the server's name in ovpn, for messages

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RemoteResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def error_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


class Remote(Protocol):
    """A host to run commands on. `run` raises `HostUnreachable` when the transport fails (no command ran), and
    `RemoteCommandFailed` when the command fails and `check` is set; otherwise the caller reads the result."""

    @property
    def target(self) -> SshTarget: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        check: bool = True,
    ) -> RemoteResult: ...

    def stream(self, argv: Sequence[str], *, sudo: bool = False) -> Iterator[str]: ...

    def write_file(
        self, path: str, content: bytes, *, mode: int = 0o600, sudo: bool = True, timeout: int = 60
    ) -> None: ...

    def hold(
        self, argv: Sequence[str], *, ready: str, sudo: bool = False, timeout: int = 30
    ) -> Held | RemoteResult:
        """Start a command that keeps running while the caller holds it: a `Held` once it prints the line
        `ready`, or its result when it exits before that (within `timeout`)."""
        ...

    def pipe(self, argv: Sequence[str], *, sudo: bool = False) -> Piped:
        """Start a command on a connection of its own with its stdin and stdout open to the caller, for data too
        big to hold in memory (an image streamed from one host to another)."""
        ...


class Held(Protocol):
    """A command left running on the host (e.g. one holding a lock) until `release`."""

    def release(self) -> None: ...


class Piped(Protocol):
    """A running command whose stdin the caller writes and whose stdout it reads (raw, unbuffered files)."""

    @property
    def stdin(self) -> IO[bytes]: ...

    @property
    def stdout(self) -> IO[bytes]: ...

    def finish(self, timeout: int) -> RemoteResult:
        """Close its stdin and wait for it to end: its exit code, the rest of its stdout, and its stderr."""
        ...

    def abort(self) -> RemoteResult:
        """End it now (the command on the host sees its input end and its output closed), and its result."""
        ...


def command_failure(target: SshTarget, result: RemoteResult) -> RemoteCommandFailed:
    """The error for a command that failed on the host: the command, its exit code and its last line."""
    detail = (result.error_text or result.text.strip()).splitlines()
    return RemoteCommandFailed(
        f"`{shlex.join(result.argv)}` failed on {target.host} (exit {result.returncode}): "
        f"{detail[-1] if detail else 'no output'}",
        "see `ovpn doctor` for this server",
        exit_code=result.returncode,
        output=(result.text + result.error_text).strip(),
    )
