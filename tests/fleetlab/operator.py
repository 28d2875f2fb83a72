"""ovpn as the operator runs it against the fleet lab: inside the controller's network namespace, with its own
data dir, and the `server add` lines the fleet tests start from."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ovpn.render.server_bundle import Geodata
from tests.fleetlab.hosts import REALITY_SERVER_NAME, REALITY_TARGET, FleetLab
from tests.fleetlab.images import HAPROXY_IMAGE, MONITORING_IMAGES, RUNTIME_IMAGE, XRAY_VERSION
from tests.support.tools import tools_bin_dir
from tests.support.topology import XRAY_KEY_PAIRS

OVPN = Path(__file__).resolve().parents[2] / ".venv/bin/ovpn"


@dataclass
class Operator:
    """ovpn as the operator runs it, inside the lab controller's network namespace, with its own data dir."""

    lab: FleetLab
    data_dir: Path
    env: dict[str, str]

    def argv(self, *argv: str) -> list[str]:
        """The command line that runs ovpn inside the controller's network namespace."""
        return ["nsenter", f"--net=/proc/{self.lab.controller_pid}/ns/net", "--", str(OVPN), *argv]

    def run(self, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)  # fmt: skip

    def ok(self, *argv: str, timeout: float = 900) -> str:
        result = self.run(*argv, timeout=timeout)
        assert result.returncode == 0, f"ovpn {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout


def lab_operator(lab: FleetLab, work: Path, geodata: Geodata | None = None, **extra_env: str) -> Operator:
    """An operator with its own data dir under `work`; with `geodata`, proxies read their preset's geodata from
    files there (the lab has no route to the real feeds)."""
    env = {**os.environ, "PATH": f"{os.environ['PATH']}:{tools_bin_dir()}", "OVPN_DATA_DIR": str(work / "state"),
           **extra_env}  # fmt: skip
    if geodata is not None:
        (work / "geosite.dat").write_bytes(geodata.geosite)
        (work / "geoip.dat").write_bytes(geodata.geoip)
        env["OVPN_PROXY_GEOSITE_PATH"] = str(work / "geosite.dat")
        env["OVPN_PROXY_GEOIP_PATH"] = str(work / "geoip.dat")
    return Operator(lab, work / "state", env)


def lab_server_options(lab: FleetLab) -> list[str]:
    """`server add` options every lab server shares: SSH as the lab's sudo user, the Xray the lab built, and the
    lab's local images (nothing is ever pulled)."""
    return ["--ssh-user", "ovpn", "--ssh-identity", str(lab.key), "--xray-version", XRAY_VERSION,
            "--image", f"ovpn-agent-base={RUNTIME_IMAGE}", "--image", f"haproxy={HAPROXY_IMAGE}",
            *[f"--image={service}={ref}" for service, ref in MONITORING_IMAGES.items()]]  # fmt: skip


def fleet_server_adds(lab: FleetLab) -> list[list[str]]:
    """The `ovpn server add` arguments of the fleet tests' three servers: proxy-ru (preset ru) and the backends
    vpn-nl and vpn-de, which share one REALITY key pair, all pointing REALITY at the lab's world site."""
    common = [*lab_server_options(lab), "--reality-server-name", REALITY_SERVER_NAME,
              "--reality-target", REALITY_TARGET]  # fmt: skip
    adds = [["server", "add", "--name", "proxy-ru", "--role", "proxy", "--proxy-preset", "ru",
             "--host", lab.hosts["proxy-ru"].address, "--domain", "proxy-ru.lab", *common]]  # fmt: skip
    for name in ("vpn-nl", "vpn-de"):
        adds.append(["server", "add", "--name", name, "--role", "vpn", "--host", lab.hosts[name].address,
                     "--reality-private-key", XRAY_KEY_PAIRS["pool"][0], "--reality-short-id", "0123456789abcdef",
                     *common])  # fmt: skip
    return adds
