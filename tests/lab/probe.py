"""The lab's client program: HTTP(S) requests through a SOCKS5 proxy (the client's Xray), timed.

Runs inside the client's namespace, standard library only. One JSON line per attempt on stdout, flushed as each
attempt ends, so a caller can watch progress while the run goes on.

    python probe.py get  --socks 127.0.0.1:10808 [--cafile ca.pem] [--count N --interval S] [--sni NAME] URL...
    python probe.py bulk --socks 127.0.0.1:10808 URL

`get` starts attempt i at `start + i * interval` (each in its own thread, so a hanging connection does not delay
the next one), cycling through the URLs, and appends `?probe=<id>` to each path so the internet host's log can
be matched to attempts. Every attempt has a deadline (`--timeout`), so a run always ends by itself.
`--sni NAME` connects to the URL's host but sends NAME as the TLS SNI (checking the certificate against it) and
as the HTTP Host: what a tun-mode client does, and what a client spoofing a name does.

Fields: `setup_ms` is the time from the start of the attempt to the first byte of the response (SOCKS
negotiation, every hop's handshakes, TLS and the request's round trip: what a user waits for before anything
arrives), `total_ms` until the response ended, `ok` means status 200 and the whole body.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import secrets
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

_print_lock = threading.Lock()


def emit(record: dict[str, Any]) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            raise ConnectionError("connection closed during SOCKS negotiation")
        data += piece
    return data


def socks_connect(proxy: tuple[str, int], host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(proxy, timeout=timeout)
    try:
        sock.sendall(b"\x05\x01\x00")
        if _recv_exact(sock, 2) != b"\x05\x00":
            raise ConnectionError("SOCKS server refused the no-auth method")
        try:
            address = b"\x01" + ipaddress.IPv4Address(host).packed
        except ValueError:
            encoded = host.encode("idna")
            address = b"\x03" + bytes([len(encoded)]) + encoded
        sock.sendall(b"\x05\x01\x00" + address + struct.pack("!H", port))
        head = _recv_exact(sock, 4)
        if head[1] != 0:
            raise ConnectionError(f"SOCKS connect failed with reply {head[1]}")
        kind = head[3]
        rest = 4 + 2 if kind == 1 else 16 + 2 if kind == 4 else _recv_exact(sock, 1)[0] + 2
        _recv_exact(sock, rest)
    except BaseException:
        sock.close()
        raise
    return sock


def open_connection(
    url: str, socks: tuple[str, int] | None, cafile: str | None, timeout: float, sni: str | None = None
) -> Any:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if socks is not None:
        sock = socks_connect(socks, host, port, timeout)
    else:
        sock = socket.create_connection((host, port), timeout=timeout)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
        try:
            sock = context.wrap_socket(sock, server_hostname=sni or host)
        except BaseException:
            sock.close()
            raise
    return sock


def request(
    url: str, socks: tuple[str, int] | None, cafile: str | None, timeout: float, sni: str | None = None
) -> dict[str, Any]:
    parts = urlsplit(url)
    start_wall, start = time.time(), time.perf_counter()
    record: dict[str, Any] = {"url": url, "start": start_wall, "ok": False, "status": None, "bytes": 0}
    deadline = start + timeout
    try:
        sock = open_connection(url, socks, cafile, timeout, sni)
        with sock:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host_header = sni or parts.netloc
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
            head = b""
            first_byte = None
            while b"\r\n\r\n" not in head:
                sock.settimeout(max(0.01, deadline - time.perf_counter()))
                piece = sock.recv(65536)
                if not piece:
                    raise ConnectionError("connection closed before the response headers")
                if first_byte is None:
                    first_byte = time.perf_counter()
                head += piece
            header, _, body = head.partition(b"\r\n\r\n")
            lines = header.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            received = len(body)
            keep = body if (length or 0) <= 65536 else b""
            while length is None or received < length:
                sock.settimeout(max(0.01, deadline - time.perf_counter()))
                piece = sock.recv(1 << 20)
                if not piece:
                    break
                received += len(piece)
                if len(keep) < 65536:
                    keep += piece[: 65536 - len(keep)]
            end = time.perf_counter()
            record.update(
                status=status,
                bytes=received,
                ok=status == 200 and (length is None or received == length),
                setup_ms=((first_byte or end) - start) * 1000,
                total_ms=(end - start) * 1000,
            )
            if status == 200 and keep and length is not None and length <= 65536:
                with contextlib.suppress(ValueError):
                    record["body"] = json.loads(keep)
            if length is not None and received < length:
                record["error"] = f"short body: {received} of {length} bytes"
    except (OSError, ValueError, ConnectionError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["total_ms"] = (time.perf_counter() - start) * 1000
    record["end"] = time.time()
    return record


def _tagged(url: str, token: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}probe={token}"


def _endpoint(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host, int(port)


def cmd_get(args: argparse.Namespace) -> int:
    socks = _endpoint(args.socks)
    run_id = args.run_id or secrets.token_hex(4)
    count = args.count or len(args.urls)
    threads = []
    begin = time.perf_counter()
    for i in range(count):
        delay = begin + i * args.interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        url = args.urls[i % len(args.urls)]
        token = f"{run_id}-{i}"

        def attempt(url: str = url, token: str = token, i: int = i) -> None:
            record = request(_tagged(url, token), socks, args.cafile, args.timeout, args.sni)
            record.update(probe=token, index=i, target=url)
            emit(record)

        if args.interval > 0:
            thread = threading.Thread(target=attempt, daemon=True)
            thread.start()
            threads.append(thread)
        else:
            attempt()
    for thread in threads:
        thread.join(args.timeout + 5)
    return 0


def cmd_bulk(args: argparse.Namespace) -> int:
    record = request(args.url, _endpoint(args.socks), args.cafile, args.timeout)
    if record.get("total_ms"):
        record["mbit_s"] = record["bytes"] * 8 / (record["total_ms"] / 1000) / 1e6
    emit(record)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get")
    get.add_argument("--socks")
    get.add_argument("--cafile")
    get.add_argument("--timeout", type=float, default=5.0)
    get.add_argument("--count", type=int, default=0)
    get.add_argument("--interval", type=float, default=0.0)
    get.add_argument("--run-id")
    get.add_argument("--sni", help="send this name as TLS SNI and HTTP Host instead of the URL's host")
    get.add_argument("urls", nargs="+")
    get.set_defaults(func=cmd_get)
    bulk = commands.add_parser("bulk")
    bulk.add_argument("--socks")
    bulk.add_argument("--cafile")
    bulk.add_argument("--timeout", type=float, default=120.0)
    bulk.add_argument("url")
    bulk.set_defaults(func=cmd_bulk)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
