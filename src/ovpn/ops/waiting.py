"""Bounded waits that say what they wait for: no operation stays silent for more than a few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]
REPORT_EVERY_SECONDS = 5.0


class Waiting:
    """Reports `waiting for WHAT (elapsed/timeout s)` at most every `every` seconds of a wait."""

    def __init__(
        self,
        progress: Progress,
        timeout: float,
        *,
        every: float = REPORT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress = progress
        self.timeout = timeout
        self.every = every
        self.clock = clock
        self.started = clock()
        self.reported = self.started

    def tick(self, what: str) -> None:
        now = self.clock()
        if now - self.reported >= self.every:
            self.reported = now
            self.progress(f"waiting for {what} ({now - self.started:.0f}/{self.timeout:.0f} s)")
