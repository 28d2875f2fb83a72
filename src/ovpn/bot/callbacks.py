"""Inline-keyboard callback data (validated) and pending restart confirmations (pure)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

SCREENS = ("status", "services", "doctor", "users", "traffic", "quota")
CONFIRM_SECONDS = 90.0
_NONCE = re.compile(r"^[0-9a-f]{8}\Z")


@dataclass(frozen=True)
class Screen:
    name: str


@dataclass(frozen=True)
class Menu:
    pass


@dataclass(frozen=True)
class AskRestart:
    service: str


@dataclass(frozen=True)
class ConfirmRestart:
    nonce: str


@dataclass(frozen=True)
class CancelRestart:
    nonce: str


Action = Screen | Menu | AskRestart | ConfirmRestart | CancelRestart


def screen_data(name: str) -> str:
    return f"s:{name}"


def parse_callback(data: str, services: Collection[str]) -> Action | None:
    """The action a button stands for, or None for anything this bot did not make."""
    kind, _, arg = data.partition(":")
    if kind == "m" and not arg:
        return Menu()
    if kind == "s" and arg in SCREENS:
        return Screen(arg)
    if kind == "r" and arg in services:
        return AskRestart(arg)
    if kind in ("y", "n") and _NONCE.match(arg):
        return ConfirmRestart(arg) if kind == "y" else CancelRestart(arg)
    return None


class Confirmations:
    """Restart prompts waiting for Confirm or Cancel; each nonce is good once, for CONFIRM_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: dict[str, tuple[str, float]] = {}

    def ask(self, service: str) -> str:
        now = self._clock()
        self._pending = {n: (s, t) for n, (s, t) in self._pending.items() if t > now}
        nonce = secrets.token_hex(4)
        self._pending[nonce] = (service, now + CONFIRM_SECONDS)
        return nonce

    def take(self, nonce: str) -> str | None:
        """The service a live prompt asked about; the prompt is used up either way."""
        service, expires = self._pending.pop(nonce, ("", 0.0))
        return service if service and expires > self._clock() else None
