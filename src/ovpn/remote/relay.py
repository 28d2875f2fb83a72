"""A stream from one host's command into another's, carried by this process: each host talks only to the
operator's SSH connection, never to the other host. Nothing is stored on the way (no file on either host or here).

The relay watches both sides: a side that stops moving data for `idle_timeout` seconds, exits early or fails ends
the stream, and the result says which side it was. The other side is then aborted: a reading command gets no more
input, so a `docker load` sees a cut archive and loads nothing of it.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ovpn.remote.base import Piped, RemoteResult

CHUNK_BYTES = 1 << 20
IDLE_TIMEOUT_SECONDS = 300
# How long the receiving command may take to finish once the whole stream is in (docker load registers layers).
TARGET_FINISH_SECONDS = 900

Side = Literal["source", "target"]


@dataclass(frozen=True)
class Relayed:
    sent: int
    source: RemoteResult
    target: RemoteResult
    # The side that failed or cut the stream short; None when both finished well.
    failed: Side | None
    stalled: bool = False


class _Stalled(Exception):
    def __init__(self, side: Side) -> None:
        self.side = side


def relay(
    source: Piped,
    target: Piped,
    progress: Callable[[int], None],
    *,
    report_every: float = 5.0,
    idle_timeout: float = IDLE_TIMEOUT_SECONDS,
) -> Relayed:
    """Copy `source`'s stdout into `target`'s stdin until the source ends, then finish both. `progress` gets the
    bytes sent so far, at most every `report_every` seconds."""
    try:
        return _pump(source, target, progress, report_every, idle_timeout)
    except BaseException:
        source.abort()
        target.abort()
        raise


def _pump(
    source: Piped, target: Piped, progress: Callable[[int], None], report_every: float, idle_timeout: float
) -> Relayed:
    sent = 0
    reader = source.stdout.fileno()
    writer = target.stdin.fileno()
    os.set_blocking(writer, False)
    last_report = time.monotonic()
    try:
        while chunk := _read(reader, idle_timeout):
            try:
                _write(writer, chunk, idle_timeout)
            except BrokenPipeError:
                return Relayed(sent, source.abort(), target.finish(60), "target")
            sent += len(chunk)
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                progress(sent)
    except _Stalled as stall:
        return Relayed(sent, source.abort(), target.abort(), stall.side, stalled=True)
    source_result = source.finish(60)
    if not source_result.ok:
        return Relayed(sent, source_result, target.abort(), "source")
    target_result = target.finish(TARGET_FINISH_SECONDS)
    return Relayed(sent, source_result, target_result, None if target_result.ok else "target")


def _read(fd: int, idle_timeout: float) -> bytes:
    if not select.select([fd], [], [], idle_timeout)[0]:
        raise _Stalled("source")
    return os.read(fd, CHUNK_BYTES)


def _write(fd: int, data: bytes, idle_timeout: float) -> None:
    view = memoryview(data)
    while view:
        if not select.select([], [fd], [], idle_timeout)[1]:
            raise _Stalled("target")
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
