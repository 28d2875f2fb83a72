"""Real Xray on loopback for the agent's tests: a VLESS + REALITY server with its API and stats, a client Xray
with one SOCKS port per user, a TLS 1.3 REALITY target and an HTTP server that sends N bytes.

Everything listens on 127.0.0.1 only and every process is started here, tracked by its Popen and stopped by it.
Traffic loops are bounded; waits poll a condition until a deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ovpn.core.links import reality_client_settings, vless_outbound
from ovpn.core.reality import generate_key_pair, generate_short_id
from tests.support.procs import stop_child, wait_until
from tests.support.waiting import LOOPBACK, free_port, port_open

SERVER_NAME = "target.loopback.test"
INBOUND_TAG = "vless-reality"
CHUNK = b"x" * 65536


# ---------------------------------------------------------------------------------------------- TLS target


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "target.pem", directory / "target.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _TlsTargetHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.settimeout(5)
            self.request.recv(4096)


class _TlsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__((LOOPBACK, port), _TlsTargetHandler)
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


# ---------------------------------------------------------------------------------------------- HTTP "internet"


class _BytesHandler(BaseHTTPRequestHandler):
    """`GET /bytes/N` sends N bytes; `GET /slow/N/MS` sends N bytes in 64 KiB chunks, MS milliseconds apart."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        size = int(parts[1]) if len(parts) > 1 else 0
        pause = int(parts[2]) / 1000 if parts[0] == "slow" and len(parts) > 2 else 0.0
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        with contextlib.suppress(OSError):
            while sent < size:
                piece = CHUNK[: min(len(CHUNK), size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
                if pause:
                    self.wfile.flush()
                    time.sleep(pause)


class _HttpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


# ---------------------------------------------------------------------------------------------- SOCKS client


def socks_get(
    socks_port: int,
    http_port: int,
    path: str,
    *,
    timeout: float = 20.0,
    started: threading.Event | None = None,
) -> int:
    """GET http://127.0.0.1:HTTP_PORT/PATH through the SOCKS5 proxy; returns the body's length.

    Raises ConnectionError when the proxy refuses or the tunnel yields no complete response.
    """
    with socket.create_connection((LOOPBACK, socks_port), timeout=timeout) as s:
        s.sendall(b"\x05\x01\x00")
        if s.recv(2) != b"\x05\x00":
            raise ConnectionError("SOCKS greeting refused")
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(LOOPBACK) + struct.pack(">H", http_port))
        reply = _recv_exact(s, 10)
        if reply[1] != 0:
            raise ConnectionError(f"SOCKS connect failed: {reply[1]}")
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"no HTTP response through the tunnel ({len(data)} bytes)")
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"unexpected response through the tunnel: {head[:40]!r}")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
        )
        received = len(body)
        if started is not None:
            started.set()
        # Read exactly the body: the tunnel passes the server's close on a little later than the data.
        while received < length:
            chunk = s.recv(min(262144, length - received))
            if not chunk:
                raise ConnectionError(f"truncated body: {received} of {length} bytes")
            received += len(chunk)
    return received


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("SOCKS proxy closed the connection")
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------- Xray processes


@dataclass
class LabUser:
    name: str
    uuid: str
    socks_port: int = 0

    @property
    def email(self) -> str:
        return f"{self.name}@global"


@dataclass
class XrayLoopback:
    """Server Xray (restartable), client Xray, REALITY target and HTTP server, all on 127.0.0.1."""

    xray: Path
    work: Path
    users: list[LabUser]
    server_users: list[str] | None = None  # names admitted in the server's config file (default: all)
    server_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    target_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    server_proc: subprocess.Popen[bytes] | None = None
    client_proc: subprocess.Popen[bytes] | None = None
    _servers: list[socketserver.BaseServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = generate_key_pair()
        self.private_key, self.public_key = keys.private_key, keys.public_key
        self.short_id = generate_short_id()
        for user in self.users:
            user.socks_port = free_port()

    @property
    def api_address(self) -> str:
        return f"{LOOPBACK}:{self.api_port}"

    def server_config(self) -> dict[str, Any]:
        admitted = [u for u in self.users if self.server_users is None or u.name in self.server_users]
        return {
            "log": {"loglevel": "warning"},
            "api": {"tag": "api", "listen": self.api_address, "services": ["HandlerService", "StatsService"]},
            "stats": {},
            "policy": {"levels": {"0": {"statsUserUplink": True, "statsUserDownlink": True}}},
            "inbounds": [
                {
                    "tag": INBOUND_TAG,
                    "listen": LOOPBACK,
                    "port": self.server_port,
                    "protocol": "vless",
                    "settings": {
                        "clients": [
                            {"id": u.uuid, "email": u.email, "flow": "xtls-rprx-vision", "level": 0}
                            for u in admitted
                        ],
                        "decryption": "none",
                    },
                    "streamSettings": {
                        "network": "tcp",
                        "security": "reality",
                        "realitySettings": {
                            "dest": f"{LOOPBACK}:{self.target_port}",
                            "serverNames": [SERVER_NAME],
                            "privateKey": self.private_key,
                            "shortIds": [self.short_id],
                        },
                    },
                }
            ],
            "outbounds": [{"tag": "direct", "protocol": "freedom", "settings": {}}],
        }

    def client_config(self) -> dict[str, Any]:
        reality = reality_client_settings(SERVER_NAME, self.public_key, self.short_id)
        inbounds, outbounds, rules = [], [], []
        for user in self.users:
            inbounds.append(
                {"tag": f"in-{user.name}", "listen": LOOPBACK, "port": user.socks_port, "protocol": "socks",
                 "settings": {"udp": False}}
            )  # fmt: skip
            outbounds.append(
                vless_outbound(f"out-{user.name}", LOOPBACK, self.server_port, user.uuid, reality)
            )
            rules.append(
                {"type": "field", "inboundTag": [f"in-{user.name}"], "outboundTag": f"out-{user.name}"}
            )
        return {
            "log": {"loglevel": "warning"},
            "inbounds": inbounds,
            "outbounds": outbounds,
            "routing": {"rules": rules},
        }

    def _spawn(self, name: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(config, indent=2))
        log = (self.work / f"{name}.log").open("ab")
        return subprocess.Popen(
            [str(self.xray), "run", "-config", str(path)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start(self) -> None:
        cert, key = self_signed(self.work)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.num_tickets = 0
        context.load_cert_chain(cert, key)
        for server in (
            _TlsServer(self.target_port, context),
            _HttpServer((LOOPBACK, self.http_port), _BytesHandler),
        ):
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.start_server()
        self.client_proc = self._spawn("client", self.client_config())
        ports = [user.socks_port for user in self.users]
        wait_until(lambda: all(port_open(p) for p in ports), timeout=10, what="the client's SOCKS ports")

    def start_server(self) -> None:
        assert self.server_proc is None or self.server_proc.poll() is not None
        self.server_proc = self._spawn("server", self.server_config())
        wait_until(lambda: port_open(self.api_port) and port_open(self.server_port), timeout=10,
                 what="Xray server API and inbound")  # fmt: skip

    def stop_server(self) -> None:
        if self.server_proc is not None:
            stop_child(self.server_proc)
        wait_until(lambda: not port_open(self.api_port), timeout=10, what="Xray API to close")

    def restart_server(self) -> None:
        self.stop_server()
        self.start_server()

    def stop(self) -> None:
        for proc in (self.client_proc, self.server_proc):
            if proc is not None:
                stop_child(proc)
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def user(self, name: str) -> LabUser:
        return next(u for u in self.users if u.name == name)

    def download(self, name: str, size: int, *, timeout: float = 20.0) -> int:
        return socks_get(self.user(name).socks_port, self.http_port, f"/bytes/{size}", timeout=timeout)

    def download_slow(self, name: str, size: int, *, pause_ms: int, started: threading.Event) -> int:
        """A long download: 64 KiB chunks, `pause_ms` apart; `started` is set once the response is flowing."""
        port = self.user(name).socks_port
        return socks_get(port, self.http_port, f"/slow/{size}/{pause_ms}", timeout=60, started=started)

    def download_fails(self, name: str, size: int = 1000) -> bool:
        try:
            self.download(name, size, timeout=5)
        except (ConnectionError, OSError):
            return True
        return False

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def xray_loopback(
    xray: Path, work: Path, users: list[LabUser], server_users: list[str] | None = None
) -> Iterator[XrayLoopback]:
    lab = XrayLoopback(xray, work, users, server_users)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
