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
def fleet_lab(lab_engine: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.fleetlab.engine import Engine
    from tests.fleetlab.hosts import start_lab, stop_lab
    from tests.fleetlab.images import ensure_images

    assert isinstance(lab_engine, Engine)
    lab = None
    try:
        images = ensure_images(lab_engine, tool_path("xray"))
        lab = start_lab(lab_engine, ["proxy-ru", "vpn-nl", "vpn-de"], tmp_path_factory.mktemp("fleetlab"), images)
        yield lab
    finally:
        if lab is not None:
            stop_lab(lab)
