"""`ovpn-agent`: traffic accounting, quota and expiry enforcement, live user changes, health and metrics for
the host's Xray, served on the compose network (published on the host's loopback only).

It starts and answers even while Xray is unreachable, and says so: `/health` reports `degraded` and the
`ovpn_agent_xray_api_up` gauge is 0. Reads are open; every request that changes state needs the bearer token.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ovpn import __version__
from ovpn.core.names import AGENT_PORT, XRAY_API_PORT

# The console script imports this module first: without the agent extra, say what to install in one line.
AGENT_EXTRA_MODULES = {"grpc", "google", "google.protobuf", "typing_extensions", "prometheus_client"}
try:
    from ovpn.agent.http_api import serve
    from ovpn.agent.service import DEFAULT_INBOUND_TAG, DEFAULT_POLL_SECONDS, Agent
except ModuleNotFoundError as missing:
    if missing.name not in AGENT_EXTRA_MODULES:
        raise
    raise SystemExit(
        f"ovpn-agent needs the agent extra ({missing.name} is not installed): pip install 'ovpn[agent]'"
    ) from None

log = logging.getLogger("ovpn-agent")


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces, as in ':9090'


def read_token(env: dict[str, str]) -> str:
    if env.get("OVPN_AGENT_TOKEN_FILE"):
        return Path(env["OVPN_AGENT_TOKEN_FILE"]).read_text().strip()
    return env.get("OVPN_AGENT_TOKEN", "").strip()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ovpn-agent", description=__doc__)
    parser.add_argument(
        "--listen", type=host_port, default=("127.0.0.1", AGENT_PORT), help="HOST:PORT to serve on"
    )
    parser.add_argument(
        "--xray-api", type=host_port, default=("127.0.0.1", XRAY_API_PORT), help="Xray API HOST:PORT"
    )
    parser.add_argument("--db-path", type=Path, default=Path("/var/lib/ovpn-agent"), help="data directory")
    parser.add_argument("--inbound-tag", default=DEFAULT_INBOUND_TAG, help="the VLESS inbound users live in")
    parser.add_argument("--poll-interval", type=float,
                        default=float(os.environ.get("OVPN_AGENT_POLL_INTERVAL", DEFAULT_POLL_SECONDS)),
                        help="seconds between collections (default 30)")  # fmt: skip
    parser.add_argument("--cert-file", default=os.environ.get("OVPN_AGENT_CERT_FILE", ""),
                        help="PEM certificate (or fullchain) whose expiry to export; empty = not configured")  # fmt: skip
    parser.add_argument("--log-level", default=os.environ.get("OVPN_AGENT_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be positive")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    token = read_token(dict(os.environ))
    if not token:
        log.warning("no OVPN_AGENT_TOKEN: changing endpoints will refuse every request")
    agent = Agent(args.xray_api, args.db_path, token, inbound_tag=args.inbound_tag,
                  poll_interval=args.poll_interval, cert_file=args.cert_file)  # fmt: skip
    server = serve(agent, args.listen)
    up, error = agent.xray_api_up()
    state = "reachable" if up else f"NOT reachable ({error}; serving health and metrics anyway)"
    log.info("ovpn-agent %s on %s:%d; Xray API %s:%d is %s", __version__, *args.listen, *args.xray_api, state)
    agent.start_background()
    # `docker stop` sends SIGTERM: finish the request in flight, stop the collector, close the database.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        agent.stop()


if __name__ == "__main__":
    main()
