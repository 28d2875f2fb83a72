"""A VPN client in the lab: real Xray inside the controller's network namespace, driven through its SOCKS port.

The client config is the one `ovpn user link --format xray-json` prints; only the server address is replaced
by the host's lab address, as a client's DNS would resolve the link's domain.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fleetlab.hosts import FleetLab
from tests.support.procs import LabError, Processes, wait_until

SOCKS_PORT = 10808


@dataclass
class Client:
    lab: FleetLab
    socks_port: int

    def fetch(self, url: str) -> dict[str, Any]:
        """GET through the tunnel; the lab's internet answers with the source address it saw (`src`)."""
        result = self.lab.in_controller(
            [
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "15",
                "--socks5-hostname",
                f"127.0.0.1:{self.socks_port}",
                url,
            ],
            timeout=30,
        )
        assert result.returncode == 0, f"GET {url} through the tunnel failed: {result.stderr}"
        return json.loads(result.stdout)  # type: ignore[no-any-return]


def _listening(lab: FleetLab, port: int) -> bool:
    result = lab.in_controller(["ss", "-Hltn", f"sport = :{port}"], timeout=10)
    return result.returncode == 0 and bool(result.stdout.strip())


@contextlib.contextmanager
def vpn_client(
    lab: FleetLab, config: dict[str, Any], address: str, workdir: Path, xray: Path
) -> Iterator[Client]:
    for outbound in config["outbounds"]:
        for server in outbound.get("settings", {}).get("vnext", []):
            server["address"] = address
    path = workdir / "client.json"
    path.write_text(json.dumps(config))
    procs = Processes(workdir)
    argv = ["nsenter", f"--net=/proc/{lab.controller_pid}/ns/net", "--", str(xray), "run", "-c", str(path)]
    client = procs.start("client", argv)

    def started() -> bool:
        if not client.alive():
            raise LabError(f"the lab client exited: {client.log_text()}")
        return _listening(lab, SOCKS_PORT)

    try:
        wait_until(started, timeout=30, what="the lab client's SOCKS port", interval=0.2)
        yield Client(lab, SOCKS_PORT)
    finally:
        procs.stop_all()
