"""A fact: a command to run on a host and the pure function that turns its result into a value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ovpn.remote.base import Remote, RemoteResult

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    argv: tuple[str, ...]
    parse: Callable[[RemoteResult], T]
    sudo: bool = True
    timeout: int = 60
    # When set, the command's own failure raises `RemoteCommandFailed`; otherwise the parser reads it.
    check: bool = False


def gather(remote: Remote, fact: Fact[T]) -> T:
    """Run the fact's command and parse what it returned (an unreachable host always raises)."""
    return fact.parse(remote.run(fact.argv, sudo=fact.sudo, timeout=fact.timeout, check=fact.check))


def combined_output(result: RemoteResult) -> str:
    """stdout then stderr, stripped: what an operator would see in a terminal."""
    return (result.text + result.error_text).strip()
