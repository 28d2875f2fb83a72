"""SSH transport over the system OpenSSH client.

Using `ssh` itself means the operator's `~/.ssh/config`, agent, ProxyJump and keys all work unchanged. Every call
goes through one multiplexed connection per host (ControlMaster), runs in batch mode (never prompts), has a connect
timeout and a timeout of its own, and builds the remote command with shell quoting from an argument list, so no
value can inject shell syntax. Secrets travel on stdin, never in a command line. This module knows nothing about
Xray or ovpn's layout.

The master connection's socket carries every later command and the secrets sent on stdin, so its folder must be
ours alone: `private_control_dir` creates it 0700 or refuses one that another user made or could enter.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ovpn.errors import HostUnreachable, OvpnError, RemoteCommandFailed
from ovpn.remote.base import DEFAULT_TIMEOUT_SECONDS, Held, Piped, RemoteResult, SshTarget, command_failure
from ovpn.remote.host_keys import RERUN_WITH_OPTION, host_key_failure, new_key_line, pinned_keys

CONNECT_TIMEOUT_SECONDS = 15
SSH_FAILED = 255
# A Unix socket path holds at most 103 bytes on the BSDs and macOS (107 on Linux). ssh names the socket by `%C`
# (40 hex characters) and binds it first under a temporary name 17 characters longer, so the folder gets the rest.
MAX_SOCKET_PATH = 103
CONTROL_NAME_LENGTH = 1 + 40 + 17


def _ignore(line: str) -> None:
    return None


@dataclass(frozen=True)
class SshSettings:
    """How to reach hosts: ovpn's own known_hosts file (checked first), host-key policy, multiplexing.

    `pin_advice` ends the hints about an unknown or changed host key (how the command the operator ran pins one),
    and `announce` gets the line that reports a key pinned on first contact."""

    known_hosts: Path
    control_dir: Path
    accept_new_host_key: bool = False
    pin_advice: str = RERUN_WITH_OPTION
    announce: Callable[[str], None] = _ignore
    connect_timeout: int = CONNECT_TIMEOUT_SECONDS
    ssh_binary: str = "ssh"
    config_file: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def remote_command(argv: Sequence[str], *, sudo: bool = False, timeout: int | None = None) -> str:
    """The one string ssh hands to the remote shell: every argument quoted, optional sudo and timeout."""
    if not argv:
        raise ValueError("empty remote command")
    words = list(argv)
    if timeout is not None:
        words = ["timeout", "--kill-after=5", str(timeout), *words]
    if sudo:
        words = ["sudo", "-n", "--", *words]
    return shlex.join(words)


def classify_ssh_failure(
    target: SshTarget, stderr: str, known_hosts: Path | None = None, pin_advice: str = RERUN_WITH_OPTION
) -> HostUnreachable:
    """Turn ssh's own failure (exit 255) into one line and a hint."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "no output"
    refused = host_key_failure(target, text, known_hosts, pin_advice)
    if refused is not None:
        return refused
    if "Permission denied" in text:
        return HostUnreachable(
            f"SSH authentication to {target.label} failed",
            "check --ssh-user and --ssh-identity (or your ssh agent) for this server",
        )
    if any(
        s in text for s in ("Connection timed out", "Connection refused", "No route to host", "timed out")
    ):
        return HostUnreachable(
            f"cannot reach {target.label}: {last}", "check --host, --ssh-port and the firewall"
        )
    if "Could not resolve hostname" in text:
        return HostUnreachable(f"cannot resolve {target.host}", "check the server's --host")
    return HostUnreachable(f"SSH to {target.label} failed: {last}", "run `ssh -v` by hand to see why")


class Ssh:
    """One host's connection. Use as a context manager so the master connection is closed at the end."""

    def __init__(self, target: SshTarget, settings: SshSettings) -> None:
        self.target = target
        self.settings = settings
        self._watch_new_keys = settings.accept_new_host_key
        private_known_hosts(settings.known_hosts)
        private_control_dir(settings.control_dir)

    def __enter__(self) -> Ssh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def base_argv(self, *, shared: bool = True) -> list[str]:
        """ssh's arguments up to the remote command; `shared=False` opens a connection of its own, which
        closing the shared master does not end."""
        s, t = self.settings, self.target
        user_known = "~/.ssh/known_hosts"
        argv = [s.ssh_binary]
        if s.config_file is not None:
            argv += ["-F", str(s.config_file)]
        argv += [
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",  # ssh's errors explain its failures (QUIET would hide them); no INFO chatter
            "-o", f"ConnectTimeout={s.connect_timeout}",
            "-o", f"StrictHostKeyChecking={'accept-new' if s.accept_new_host_key else 'yes'}",
            "-o", f"UserKnownHostsFile={s.known_hosts} {user_known}",
            *(["-o", "ControlMaster=auto", "-o", f"ControlPath={s.control_dir}/%C", "-o", "ControlPersist=60"]
              if shared else ["-o", "ControlMaster=no", "-o", "ControlPath=none"]),
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3",
            "-p", str(t.port),
            "-l", t.user,
        ]  # fmt: skip
        if t.identity:
            argv += ["-i", t.identity, "-o", "IdentitiesOnly=yes"]
        return [*argv, "--", t.host]

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        check: bool = True,
    ) -> RemoteResult:
        """Run a command on the host. ssh's own failures always raise; the command's own only with `check`."""
        command = remote_command(argv, sudo=sudo, timeout=timeout)
        local = [*self.base_argv(), command]
        pinned_before = self._pinned_keys()
        try:
            proc = subprocess.run(
                local,
                input=input if input is not None else b"",
                capture_output=True,
                timeout=timeout + self.settings.connect_timeout + 10,
                env=dict(self.settings.env),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RemoteCommandFailed(
                f"`{shlex.join(argv)}` on {self.target.host} did not finish within {timeout}s",
                "the host may be overloaded or the connection stalled; run `ovpn doctor` for this server",
            ) from None
        result = RemoteResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if pinned_before is not None:
            self._announce_new_keys(pinned_before, connected=proc.returncode != SSH_FAILED)
        # ovpn never runs remote commands that exit 255 on purpose, so 255 means ssh itself failed.
        if proc.returncode == SSH_FAILED:
            raise classify_ssh_failure(
                self.target, result.error_text, self.settings.known_hosts, self.settings.pin_advice
            )
        if check and not result.ok:
            raise command_failure(self.target, result)
        return result

    def _pinned_keys(self) -> frozenset[str] | None:
        """Before a connection that may pin the host's key (accept-new, not connected yet): the keys on file."""
        return pinned_keys(self.settings.known_hosts, self.target) if self._watch_new_keys else None

    def _announce_new_keys(self, before: frozenset[str], *, connected: bool) -> None:
        """Report each key ssh added to ovpn's known_hosts (it may add one and then fail to log in)."""
        for key in sorted(pinned_keys(self.settings.known_hosts, self.target) - before):
            self.settings.announce(new_key_line(self.target, key, self.settings.known_hosts))
        if connected:
            self._watch_new_keys = False

    def stream(self, argv: Sequence[str], *, sudo: bool = False) -> Iterator[str]:
        """Yield output lines as the remote command produces them (for `--follow`); no timeout."""
        local = [*self.base_argv(), remote_command(argv, sudo=sudo)]
        with subprocess.Popen(
            local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(self.settings.env)
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                yield raw.decode(errors="replace").rstrip("\n")
            proc.wait()

    def hold(
        self, argv: Sequence[str], *, ready: str, sudo: bool = False, timeout: int = 30
    ) -> Held | RemoteResult:
        """Run a command on a connection of its own and keep it running until `release`: closing its stdin ends
        it, and so does this process dying (ssh then sees end of input), so nothing it holds outlives us."""
        local = [*self.base_argv(shared=False), remote_command(argv, sudo=sudo)]
        pinned_before = self._pinned_keys()
        # A session of its own: Ctrl-C in the terminal stops the operation, which then releases what it holds.
        proc = subprocess.Popen(local, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(self.settings.env), start_new_session=True)  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        first, seen, ended = _first_line(proc.stdout, timeout)
        if pinned_before is not None:
            self._announce_new_keys(pinned_before, connected=first is not None)
        if first == ready:
            return _HeldProcess(proc)
        if first is None and not ended:
            _HeldProcess(proc).release()
            raise RemoteCommandFailed(
                f"`{shlex.join(argv)}` on {self.target.host} did not answer within {timeout}s",
                "the host may be overloaded or the connection stalled; run `ovpn doctor` for this server",
            )
        out, err = proc.communicate(timeout=timeout)
        result = RemoteResult(tuple(argv), proc.returncode, seen + out, err)
        if proc.returncode == SSH_FAILED:
            raise classify_ssh_failure(
                self.target, result.error_text, self.settings.known_hosts, self.settings.pin_advice
            )
        return result

    def pipe(self, argv: Sequence[str], *, sudo: bool = False) -> Piped:
        """Run a command on a connection of its own, its stdin and stdout open to the caller; no timeout (the
        caller watches the stream). Killing this ssh ends the session, so `abort` leaves nothing running. Exit
        255 in its result is ssh's own failure (see `classify_ssh_failure`)."""
        local = [*self.base_argv(shared=False), remote_command(argv, sudo=sudo)]
        return PipedProcess.start(local, argv, env=self.settings.env)

    def write_file(
        self, path: str, content: bytes, *, mode: int = 0o600, sudo: bool = True, timeout: int = 60
    ) -> None:
        """Create or replace a file atomically (temp file + rename) with the given mode; content goes on stdin."""
        script = 'set -e; tmp="$1.ovpn-tmp"; umask 077; cat > "$tmp"; chmod "$2" "$tmp"; mv -f "$tmp" "$1"'
        self.run(["sh", "-c", script, "sh", path, f"{mode:o}"], sudo=sudo, input=content, timeout=timeout)

    def close(self) -> None:
        """Stop the master connection, if one is running."""
        subprocess.run(
            [*self.base_argv()[:-2], "-O", "exit", "--", self.target.host],
            capture_output=True,
            timeout=15,
            env=dict(self.settings.env),
            check=False,
        )


def _first_line(stream: IO[bytes], timeout: float) -> tuple[str | None, bytes, bool]:
    """The first whole line a process prints (None when it prints none within `timeout` or ends first),
    everything read on the way, and whether its output ended (False: the wait timed out)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = stream.fileno()
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None, buffer, False
        chunk = os.read(fd, 4096)
        if not chunk:
            return None, buffer, True
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode(errors="replace"), buffer, False


class _HeldProcess:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def release(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class PipedProcess:
    """A local process carrying a command's stdin and stdout (ssh, or in tests the command itself). Unbuffered, so
    what the caller reads with `os.read` and what `finish` collects never overlap. In a session of its own, so
    Ctrl-C reaches ovpn alone, which then aborts the command."""

    def __init__(self, proc: subprocess.Popen[bytes], argv: Sequence[str]) -> None:
        self.proc = proc
        self.argv = tuple(argv)

    @classmethod
    def start(
        cls, local: Sequence[str], argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> PipedProcess:
        proc = subprocess.Popen(list(local), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                bufsize=0, env=dict(env) if env is not None else None, start_new_session=True)  # fmt: skip
        return cls(proc, argv)

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def finish(self, timeout: int) -> RemoteResult:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.abort()
            raise RemoteCommandFailed(
                f"`{shlex.join(self.argv)}` did not finish within {timeout}s after its input ended",
                "the host may be overloaded or the connection stalled; run `ovpn doctor` for this server",
            ) from None
        return RemoteResult(self.argv, self.proc.returncode, out, err)

    def abort(self) -> RemoteResult:
        """Kill its whole process group (it leads one): ssh with any ProxyCommand it started."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        out, err = self.proc.communicate()
        return RemoteResult(self.argv, self.proc.returncode, out, err)


def _private_folder_error(path: Path, reason: str) -> OvpnError:
    return OvpnError(
        f"the SSH control folder {path} {reason}: refusing to use it",
        "another local user may have made it to receive ovpn's SSH sessions; check who owns it, remove it, and run "
        "again (or point TMPDIR or XDG_RUNTIME_DIR at a private folder)",
    )


def private_control_dir(path: Path) -> Path:
    """Create the ControlMaster folder 0700, or accept an existing one only if it is a real folder (not a symlink),
    owned by this user, that no group or other user can enter."""
    try:
        path.mkdir(mode=0o700)
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        raise OvpnError(f"cannot create the SSH control folder {path}: {e.strerror}",
                        "point TMPDIR or XDG_RUNTIME_DIR at a writable private folder") from None  # fmt: skip
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise _private_folder_error(path, "is not a folder (a symlink or a file)")
    if st.st_uid != os.geteuid():
        raise _private_folder_error(path, f"belongs to another user (uid {st.st_uid})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise _private_folder_error(path, f"is open to other users (mode {stat.S_IMODE(st.st_mode):04o})")
    if created and stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)  # a umask that also took the owner's bits
    return path


def private_known_hosts(path: Path) -> None:
    """Create ovpn's known_hosts 0600 before ssh appends to it (ssh would create it by the umask), and tighten
    one an older ovpn left readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise OvpnError(f"cannot open {path}: {e.strerror}",
                        "it must be a regular file of yours in the data directory") from None  # fmt: skip
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def control_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the master sockets live: the user's runtime folder if there is one, else the temp folder; the first
    whose path leaves room for the socket's name."""
    name = f"ovpn-ssh-{os.geteuid()}"
    candidates = [Path(env["XDG_RUNTIME_DIR"]) / "ovpn-ssh"] if env.get("XDG_RUNTIME_DIR") else []
    candidates += [Path(tempfile.gettempdir()) / name, Path("/tmp") / name]  # noqa: S108 - checked, see above
    for candidate in candidates:
        if candidate.parent.is_dir() and len(os.fsencode(candidate)) + CONTROL_NAME_LENGTH <= MAX_SOCKET_PATH:
            return candidate
    return candidates[-1]


def default_settings(
    data_dir: Path,
    *,
    accept_new_host_key: bool = False,
    pin_advice: str = RERUN_WITH_OPTION,
    announce: Callable[[str], None] = _ignore,
) -> SshSettings:
    return SshSettings(
        known_hosts=data_dir / "known_hosts",
        control_dir=control_dir(),
        accept_new_host_key=accept_new_host_key,
        pin_advice=pin_advice,
        announce=announce,
        config_file=Path(os.environ["OVPN_SSH_CONFIG"]) if os.environ.get("OVPN_SSH_CONFIG") else None,
    )
