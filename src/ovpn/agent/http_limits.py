"""Bounds on what one HTTP client can hold in the agent: a worker thread and a time limit per request.

`ThreadingHTTPServer` starts a thread for every connection and keeps it as long as the client keeps the
connection open, and a socket timeout is per `recv`, so a client that sends one byte every few seconds
(slowloris) keeps its thread forever. Here:

* at most `workers` connections are served at once; further connections wait in the listen backlog (they are
  not refused) until a worker is free;
* a request (its line, headers and body) must arrive within `request_seconds` in total, counted from when the
  worker starts waiting for it, so an idle keep-alive connection is dropped after that time too, and a
  response must be taken by the client within the same time.

The defaults: the agent's clients (Prometheus, the bot, the CLI through `docker exec`, the healthcheck) sit on
the host's loopback or the compose network, send each request at once and rarely run more than a few at a
time. Sixteen workers leave ample room for them while bounding the agent to sixteen threads and sixteen
request bodies in memory. Ten seconds is ages for a request on those networks, yet a connection flood only
delays a legitimate request by ten seconds per sixteen slow connections queued before it.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

MAX_WORKERS = 16
REQUEST_SECONDS = 10.0
BACKLOG = 128
CHUNK = 64 * 1024
_SLOT_POLL_SECONDS = 0.2


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with at most `workers` handler threads."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        workers: int = MAX_WORKERS,
        request_seconds: float = REQUEST_SECONDS,
    ) -> None:
        self.workers = workers
        self.request_seconds = request_seconds
        self._slots = threading.BoundedSemaphore(workers)
        self._closing = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # The accept loop waits for a free worker; it looks up now and then so that shutdown() is not held.
        while not self._slots.acquire(timeout=_SLOT_POLL_SECONDS):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()


class DeadlineReader(io.BufferedIOBase):
    """The connection's buffered reader, with one deadline for all the reads of a request (not one per recv)."""

    def __init__(self, buffered: io.BufferedReader, connection: socket.socket, seconds: float) -> None:
        super().__init__()
        self._buffered = buffered
        self._connection = connection
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def restart(self) -> None:
        self._deadline = time.monotonic() + self._seconds

    def _within_deadline(self, read: Callable[[], bytes]) -> bytes:
        late = TimeoutError(f"the request did not arrive within {self._seconds:g} s")
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise late
        self._connection.settimeout(left)
        try:
            return read()
        except TimeoutError:
            raise late from None
        finally:
            self._connection.settimeout(self._seconds)  # what a write may take (sendall counts in total)

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        return self._within_deadline(lambda: self._buffered.read1(size if size >= 0 else CHUNK))

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise ValueError("the agent reads a known length")
        chunks: list[bytes] = []
        left = size
        while left > 0:
            chunk = self.read1(min(left, CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        line = bytearray()
        while limit < 0 or len(line) < limit:
            # peek() makes at most one recv; read() then takes only what is already buffered.
            available = self._within_deadline(lambda: self._buffered.peek(1))
            if not available:
                break
            if limit >= 0:
                available = available[: limit - len(line)]
            end = available.find(b"\n") + 1 or len(available)
            line += self._buffered.read(end)
            if line.endswith(b"\n"):
                break
        return bytes(line)

    def close(self) -> None:
        self._buffered.close()
        super().close()


class DeadlineHandler(BaseHTTPRequestHandler):
    """A request handler whose every request must arrive within the server's `request_seconds`."""

    def setup(self) -> None:
        super().setup()
        seconds = float(getattr(self.server, "request_seconds", REQUEST_SECONDS))
        self.connection.settimeout(seconds)
        self._reader = DeadlineReader(cast(io.BufferedReader, self.rfile), self.connection, seconds)
        self.rfile = self._reader

    def handle_one_request(self) -> None:
        self._reader.restart()
        super().handle_one_request()
