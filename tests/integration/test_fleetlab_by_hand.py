"""`python -m tests.fleetlab --check` as someone testing by hand runs it, after a run that was killed.

The command takes the machine's lab lock itself, so conftest runs this test before the first test that holds the
lock for the rest of the session (`lab_engine`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import missing_tool, tool_path
from tests.fleetlab.engine import Engine
from tests.fleetlab.hosts import NETWORK, PREFIX
from tests.fleetlab.images import HOST_IMAGE, ensure_images
from tests.fleetlab.session import locked_engine, missing_requirement

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def lab_names(engine: Engine) -> list[str]:
    """Every container, volume and network of the private engine that carries the lab's prefix."""
    containers = engine.docker("ps", "-a", "--format", "{{.Names}}").split()
    volumes = engine.docker("volume", "ls", "-q").split()
    networks = engine.docker("network", "ls", "--format", "{{.Name}}").split()
    return sorted(name for name in containers + volumes + networks if name.startswith(PREFIX))


def test_the_lab_by_hand_starts_over_a_killed_runs_leftovers_and_removes_itself() -> None:
    reason = missing_requirement()
    if reason is not None:
        missing_tool(reason)
    xray = tool_path("xray")
    leftovers = [PREFIX + "controller", PREFIX + "vpn-nl-docker", NETWORK]
    with locked_engine() as engine:
        ensure_images(engine, xray)
        # Exactly these leftovers: whatever an earlier killed session left goes first.
        engine.docker("rm", "-f", "-v", *lab_names(engine), check=False)
        engine.docker("volume", "rm", "-f", *lab_names(engine), check=False)
        engine.docker("network", "rm", *lab_names(engine), check=False)
        engine.docker("network", "create", "--internal", NETWORK)
        engine.docker("volume", "create", PREFIX + "vpn-nl-docker")
        engine.docker("create", "--name", PREFIX + "controller", "--network", NETWORK, HOST_IMAGE)
        assert lab_names(engine) == sorted(leftovers)

    result = subprocess.run([sys.executable, "-m", "tests.fleetlab", "--check"], cwd=REPO, capture_output=True,
                            text=True, timeout=1800, check=False)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"removed the leftovers of an earlier fleet lab: {' '.join(leftovers)}\n" in result.stderr
    assert "data dir lists: proxy-ru, vpn-de, vpn-nl\n" in result.stdout
    with locked_engine() as engine:
        assert lab_names(engine) == []
