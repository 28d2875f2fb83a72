"""A VPN client in the lab: real Xray inside the controller's network namespace, driven through its SOCKS port.

The client config is the one `ovpn user link --format xray-json` prints; only the server address is replaced
by the host's lab address, as a client's DNS would resolve the link's domain.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fleetlab.hosts import FleetLab

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
    log = open(workdir / "client.log", "wb")  # noqa: SIM115 - closed below, after the process ends
    process = subprocess.Popen(
        ["nsenter", f"--net=/proc/{lab.controller_pid}/ns/net", "--", str(xray), "run", "-c", str(path)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _listening(lab, SOCKS_PORT):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the lab client did not start: {(workdir / 'client.log').read_text()}")
            time.sleep(0.2)
        yield Client(lab, SOCKS_PORT)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
