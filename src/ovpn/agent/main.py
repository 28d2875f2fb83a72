"""`ovpn-agent`: health and metrics for the host's Xray, served on the compose network (published on loopback).

It starts and answers even while Xray is unreachable, and says so: `/health` reports `degraded` and the
`ovpn_agent_xray_api_up` gauge is 0. Traffic accounting, quotas and live user changes build on this service.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ovpn import __version__

log = logging.getLogger("ovpn-agent")
PROBE_TIMEOUT_SECONDS = 2.0


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces, as in ':9090'


class Agent:
    def __init__(self, xray_api: tuple[str, int], db_path: Path, token: str) -> None:
        self.xray_api = xray_api
        self.db_path = db_path
        self.token = token
        self.started = time.time()

    def xray_api_up(self) -> bool:
        try:
            with socket.create_connection(self.xray_api, timeout=PROBE_TIMEOUT_SECONDS):
                return True
        except OSError:
            return False

    def health(self) -> dict[str, object]:
        api_up = self.xray_api_up()
        return {
            "status": "ok" if api_up else "degraded",
            "version": __version__,
            "xray_api": {"address": f"{self.xray_api[0]}:{self.xray_api[1]}", "up": api_up},
            "uptime_seconds": round(time.time() - self.started, 1),
        }

    def metrics(self) -> str:
        api_up = 1 if self.xray_api_up() else 0
        lines = [
            "# HELP ovpn_agent_up The agent is running.",
            "# TYPE ovpn_agent_up gauge",
            "ovpn_agent_up 1",
            "# HELP ovpn_agent_xray_api_up Whether the Xray API answered the last probe.",
            "# TYPE ovpn_agent_xray_api_up gauge",
            f"ovpn_agent_xray_api_up {api_up}",
            "# HELP ovpn_agent_build_info The agent's version.",
            "# TYPE ovpn_agent_build_info gauge",
            f'ovpn_agent_build_info{{version="{__version__}"}} 1',
        ]
        return "\n".join(lines) + "\n"


def make_handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"ovpn-agent/{__version__}"

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, "application/json", json.dumps(agent.health()).encode())
            elif self.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4", agent.metrics().encode())
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def read_token(env: dict[str, str]) -> str:
    if env.get("OVPN_AGENT_TOKEN_FILE"):
        return Path(env["OVPN_AGENT_TOKEN_FILE"]).read_text().strip()
    return env.get("OVPN_AGENT_TOKEN", "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ovpn-agent", description=__doc__)
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 9090), help="HOST:PORT to serve on")
    parser.add_argument("--xray-api", type=host_port, default=("127.0.0.1", 10085), help="Xray API HOST:PORT")
    parser.add_argument("--db-path", type=Path, default=Path("/var/lib/ovpn-agent"), help="data directory")
    parser.add_argument("--log-level", default=os.environ.get("OVPN_AGENT_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    token = read_token(dict(os.environ))
    if not token:
        log.warning("no OVPN_AGENT_TOKEN: changing endpoints will refuse every request")
    args.db_path.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.xray_api, args.db_path, token)
    server = ThreadingHTTPServer(args.listen, make_handler(agent))
    state = "reachable" if agent.xray_api_up() else "NOT reachable (serving health and metrics anyway)"
    log.info("ovpn-agent %s on %s:%d; Xray API %s:%d is %s", __version__, *args.listen, *args.xray_api, state)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
