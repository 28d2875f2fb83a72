"""Shared pytest fixtures.

External tools built by `.ci/install-tools` live in `$OVPN_TOOLS_DIR/bin` (default `~/.cache/ovpn-tools/bin`).
Integration tests ask for them through `tool_path` or the fixtures below, and skip with a clear reason when a
tool is absent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check behaviour, not speed (figures come from bench/): no per-example deadline, which a loaded
# 2-core CI machine would otherwise trip at random.
settings.register_profile("ovpn", deadline=None)
settings.load_profile("ovpn")


def tools_bin_dir() -> Path:
    return Path(os.environ.get("OVPN_TOOLS_DIR", "~/.cache/ovpn-tools")).expanduser() / "bin"


def missing_tool(message: str) -> None:
    """Skip locally; in CI (CI=true) a missing tool is a failure, because CI installs every tool."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must run every validator: check .ci/install-tools)")
    pytest.skip(message)


def tool_path(name: str) -> Path:
    """The path of a tool installed by `.ci/install-tools`, or skip the test if it is not there."""
    path = tools_bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing_tool(f"{name} not found at {path}; run .ci/install-tools to enable this integration test")
    return path


def prefetch_agent_wheels() -> None:
    """Rendering a bundle needs the agent's gRPC wheels (downloaded once per platform). Share them across data
    directories through OVPN_AGENT_WHEEL_CACHE (kept with the tools, outside git), and fetch them now, in the
    root namespace: the labs run `ovpn` inside namespaces without a route to the package index."""
    import tempfile

    from ovpn.errors import OvpnError
    from ovpn.ops.agent_deps import AgentPlatform, dependency_wheels

    os.environ.setdefault("OVPN_AGENT_WHEEL_CACHE", str(tools_bin_dir().parent / "agent-wheels"))
    # On failure, the tests that render say so themselves.
    with tempfile.TemporaryDirectory() as data_dir, contextlib.suppress(OvpnError):
        dependency_wheels(Path(data_dir), AgentPlatform())


@pytest.fixture(autouse=True, scope="session")
def agent_wheel_cache() -> None:
    prefetch_agent_wheels()


@pytest.fixture
def tools_env() -> dict[str, str]:
    """The environment with `.ci/install-tools`' binaries on PATH, as `./ovpn` sets it up."""
    return {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{tools_bin_dir()}"}


@pytest.fixture
def xray_binary() -> Path:
    """The Xray binary from `.ci/install-tools` (the test is skipped when it is missing)."""
    return tool_path("xray")


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A data directory holding the seed's topology, selected through OVPN_DATA_DIR."""
    from tests.support.cli import seed_state

    return seed_state(tmp_path, monkeypatch, capsys)
