"""Fixtures for tests against real hosts (the fleet lab)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import missing_tool, tool_path
from tests.support.tools import tools_bin_dir

from ovpn.render.server_bundle import Geodata


@dataclass
class Operator:
    """ovpn as the operator runs it, inside the lab controller's network namespace, with its own data dir."""

    lab: object
    data_dir: Path
    env: dict[str, str]

    def argv(self, *argv: str) -> list[str]:
        """The command line that runs ovpn inside the controller's network namespace."""
        from tests.fleetlab.hosts import FleetLab

        assert isinstance(self.lab, FleetLab)
        ovpn = str(Path(__file__).resolve().parents[2] / ".venv/bin/ovpn")
        return ["nsenter", f"--net=/proc/{self.lab.controller_pid}/ns/net", "--", ovpn, *argv]

    def run(self, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)  # fmt: skip

    def ok(self, *argv: str, timeout: float = 900) -> str:
        result = self.run(*argv, timeout=timeout)
        assert result.returncode == 0, f"ovpn {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout


def lab_operator(lab: object, work: Path, geodata: Geodata | None = None, **extra_env: str) -> Operator:
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


def lab_server_options(lab: object) -> list[str]:
    """`server add` options every lab server shares: SSH as the lab's sudo user, the Xray the lab built, and the
    lab's local images (nothing is ever pulled)."""
    from tests.fleetlab.hosts import FleetLab
    from tests.fleetlab.images import HAPROXY_IMAGE, MONITORING_IMAGES, RUNTIME_IMAGE, XRAY_VERSION

    assert isinstance(lab, FleetLab)
    return ["--ssh-user", "ovpn", "--ssh-identity", str(lab.key), "--xray-version", XRAY_VERSION,
            "--image", f"ovpn-agent-base={RUNTIME_IMAGE}", "--image", f"haproxy={HAPROXY_IMAGE}",
            *[f"--image={service}={ref}" for service, ref in MONITORING_IMAGES.items()]]  # fmt: skip


@pytest.fixture(scope="session")
def lab_engine() -> Iterator[object]:
    """The fleet lab's private Docker engine, held under the lab lock for the whole session (one lab per machine;
    every test that needs the engine or the lab goes through this fixture, never through the lock again)."""
    for tool in ("dockerd", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} is not installed; run .ci/install-tools")
    if os.geteuid() != 0:
        missing_tool("the fleet lab needs root (network namespaces, a private Docker engine)")
    from tests.fleetlab.engine import start_engine
    from tests.fleetlab.hosts import lab_lock

    with lab_lock():
        engine = start_engine()
        try:
            yield engine
        finally:
            engine.stop()


@pytest.fixture(scope="session")
def fleet_lab(
    lab_engine: object, agent_wheels: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """The fleet lab's hosts; ovpn runs in its controller's namespace, which has no route to the package index,
    so the agent's wheels are fetched first (`agent_wheels`)."""
    from tests.fleetlab.engine import Engine
    from tests.fleetlab.hosts import start_lab, stop_lab
    from tests.fleetlab.images import ensure_images

    assert isinstance(lab_engine, Engine)
    lab = None
    try:
        images = ensure_images(lab_engine, tool_path("xray"))
        lab = start_lab(
            lab_engine, ["proxy-ru", "vpn-nl", "vpn-de"], tmp_path_factory.mktemp("fleetlab"), images
        )
        yield lab
    finally:
        if lab is not None:
            stop_lab(lab)
