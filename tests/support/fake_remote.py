"""A scripted `Remote` for fast tests of what deploy, rollback and doctor decide from a host's answers.

Each rule pairs a run of words that must appear in the command (in order, side by side) with the answers to
give; a rule with several answers gives them in turn and then repeats its last. A command that no rule matches
fails the test, so a test also pins which commands are run. `hold` runs like `run` and holds a command whose
first line is the awaited one (a lock taken), recording its release. ssh's own failure (exit 255) raises like `Ssh` does,
and `check=True` raises on a failed command like `Ssh` does. `pipe` starts a real local process in the host command's
place (`on_pipe`), so a stream between two fakes runs through real pipes: a `cat`, a `head -c` that ends early.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ovpn.remote.base import DEFAULT_TIMEOUT_SECONDS, Held, Piped, RemoteResult, SshTarget, command_failure
from ovpn.remote.ssh import SSH_FAILED, PipedProcess, classify_ssh_failure


@dataclass(frozen=True)
class Reply:
    stdout: str = ""
    stderr: str = ""
    code: int = 0


UNREACHABLE = Reply(stderr="ssh: connect to host vpn-1.test port 22: Connection refused", code=SSH_FAILED)

Answer = Reply | Callable[[tuple[str, ...]], Reply]


@dataclass
class Rule:
    words: tuple[str, ...]
    answers: list[Answer]
    used: int = 0

    def matches(self, argv: tuple[str, ...]) -> bool:
        n = len(self.words)
        return any(argv[i : i + n] == self.words for i in range(len(argv) - n + 1))

    def answer(self, argv: tuple[str, ...]) -> Reply:
        answer = self.answers[min(self.used, len(self.answers) - 1)]
        self.used += 1
        return answer(argv) if callable(answer) else answer


@dataclass
class ScriptedRemote:
    target: SshTarget = field(default_factory=lambda: SshTarget("vpn-1.test", 22, "deploy"))
    rules: list[Rule] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    released: list[tuple[str, ...]] = field(default_factory=list)
    pipes: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    def on(self, *words: str, reply: Answer | Sequence[Answer] = Reply()) -> ScriptedRemote:
        """Answer commands holding `words` (the first matching rule wins, so add specific rules first)."""
        answers = list(reply) if isinstance(reply, Sequence) else [reply]
        self.rules.append(Rule(tuple(words), answers))
        return self

    def on_pipe(self, *words: str, local: Sequence[str]) -> ScriptedRemote:
        """`pipe` of a command holding `words` runs the local command `local` in its place."""
        self.pipes.append((tuple(words), tuple(local)))
        return self

    def ran(self, *words: str) -> list[tuple[str, ...]]:
        """The commands run so far that hold `words`."""
        probe = Rule(tuple(words), [])
        return [argv for argv in self.calls if probe.matches(argv)]

    def __enter__(self) -> ScriptedRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        check: bool = True,
    ) -> RemoteResult:
        command = tuple(argv)
        self.calls.append(command)
        rule = next((r for r in self.rules if r.matches(command)), None)
        if rule is None:
            raise AssertionError(f"unexpected command on {self.target.host}: {command}")
        reply = rule.answer(command)
        result = RemoteResult(command, reply.code, reply.stdout.encode(), reply.stderr.encode())
        if reply.code == SSH_FAILED:
            raise classify_ssh_failure(self.target, reply.stderr)
        if check and not result.ok:
            raise command_failure(self.target, result)
        return result

    def hold(
        self, argv: Sequence[str], *, ready: str, sudo: bool = False, timeout: int = 30
    ) -> Held | RemoteResult:
        """A command whose reply's first line is `ready` is held (until released, seen in `released`)."""
        result = self.run(argv, sudo=sudo, timeout=timeout, check=False)
        if result.text.split("\n", 1)[0] != ready:
            return result
        return _ScriptedHold(self, tuple(argv))

    def stream(self, argv: Sequence[str], *, sudo: bool = False) -> Iterator[str]:
        yield from self.run(argv, sudo=sudo).text.splitlines()

    def pipe(self, argv: Sequence[str], *, sudo: bool = False) -> Piped:
        command = tuple(argv)
        self.calls.append(command)
        local = next((local for words, local in self.pipes if Rule(words, []).matches(command)), None)
        if local is None:
            raise AssertionError(f"unexpected piped command on {self.target.host}: {command}")
        return PipedProcess.start(local, command)

    def write_file(
        self, path: str, content: bytes, *, mode: int = 0o600, sudo: bool = True, timeout: int = 60
    ) -> None:
        self.calls.append(("write_file", path, f"{mode:o}"))
        self.files[path] = content


@dataclass
class _ScriptedHold:
    remote: ScriptedRemote
    argv: tuple[str, ...]

    def release(self) -> None:
        self.remote.released.append(self.argv)
