"""The lab's "internet": HTTP and HTTPS on several addresses and names, recording who asked.

Runs inside the internet host's namespace, standard library only:

    python internet_server.py --log requests.jsonl --ready ready --cert c.pem --key k.pem \
        --http 10.219.2.10:80 --https 10.219.2.10:443 ... [--tls-target 10.219.2.50:443]

Every request is appended to the log as one JSON line, written before the response, with the source address
the server saw (`src`): that is how tests know which host a request left from, independently of what the
client believes. `GET /bytes/N` answers N bytes (bulk transfers); anything else answers a small JSON body.

`--tls-target` is a TLS 1.3-only endpoint for REALITY's `dest`. REALITY servers connect to it for incoming
connections, so its connections never appear in the request log; `--target-log` records them separately.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

CHUNK = b"\0" * (256 * 1024)


class Recorder:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the server
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LabServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        src, src_port = self.client_address[:2]
        local = self.connection.getsockname()
        record = {
            "t": time.time(),
            "scheme": self.server.scheme,
            "local": f"{local[0]}:{local[1]}",
            "src": src,
            "src_port": src_port,
            "host": self.headers.get("Host", ""),
            "sni": getattr(self.connection, "lab_sni", None),
            "path": self.path,
        }
        if self.server.recorder is not None:
            self.server.recorder.write(record)
        if self.path.startswith("/bytes/"):
            self._send_bytes(int(self.path.split("/")[2]))
            return
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _send_bytes(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        left = size
        while left > 0:
            piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            self.wfile.write(piece)
            left -= len(piece)
        self.close_connection = True


class LabServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(
        self, address: tuple[str, int], scheme: str, recorder: Recorder | None, tls: ssl.SSLContext | None
    ) -> None:
        self.scheme = scheme
        self.recorder = recorder
        self.tls = tls
        self.connection_log: Recorder | None = None
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, never in the accept loop.
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self._note_connection(client_address, f"handshake failed: {type(exc).__name__}")
                return
            self._note_connection(client_address, "handshake done")
            request.settimeout(None)
        super().finish_request(request, client_address)

    def _note_connection(self, client_address: Any, outcome: str) -> None:
        if self.connection_log is not None:
            self.connection_log.write({"t": time.time(), "src": client_address[0], "outcome": outcome})

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-transfer are normal during failover tests


def _tls_context(cert: str, key: str, *, tls13_only: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls13_only else ssl.TLSVersion.TLSv1_2

    def remember_sni(sock: Any, name: str | None, _context: ssl.SSLContext) -> None:
        sock.lab_sni = name

    context.sni_callback = remember_sni
    return context


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--http", action="append", default=[])
    parser.add_argument("--https", action="append", default=[])
    parser.add_argument("--tls-target", action="append", default=[])
    parser.add_argument("--target-log", help="one line per connection to a --tls-target")
    args = parser.parse_args(argv)

    recorder = Recorder(args.log)
    web_tls = _tls_context(args.cert, args.key, tls13_only=False)
    target_tls = _tls_context(args.cert, args.key, tls13_only=True)
    servers = [LabServer(_endpoint(e), "http", recorder, None) for e in args.http]
    servers += [LabServer(_endpoint(e), "https", recorder, web_tls) for e in args.https]
    targets = [LabServer(_endpoint(e), "tls-target", None, target_tls) for e in args.tls_target]
    if args.target_log:
        target_log = Recorder(args.target_log)
        for target in targets:
            target.connection_log = target_log
    servers += targets
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    with open(args.ready, "w") as ready:
        ready.write(
            json.dumps([f"{s.scheme}:{s.server_address[0]!s}:{s.server_address[1]!s}" for s in servers])
        )
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    sys.exit(main(sys.argv[1:]))
