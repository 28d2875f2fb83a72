"""Shared pytest fixtures.

External tools built by `.ci/install-tools` live in `$OVPN_TOOLS_DIR/bin` (default `~/.cache/ovpn-tools/bin`).
Integration tests ask for them through `tool_path` or the fixtures below, and skip with a clear reason when a
tool is absent.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.procs import held_lock
from tests.support.tools import agent_wheel_cache, tools_bin_dir

# Property tests check behaviour, not speed (figures come from bench/): no per-example deadline, which a loaded
# 2-core CI machine would otherwise trip at random.
settings.register_profile("ovpn", deadline=None)
settings.load_profile("ovpn")


# ./scripts/test runs pytest on two xdist workers. Every module of tests/integration runs whole on one worker, in its
# order (its tests share a lab or a stack); the modules that use the fleet lab's engine (one per machine, held for a
# worker's whole session) run together, the by-hand lab's check first (it must run before that engine is taken).
# That group is the longest run: it gets a worker of its own while the other worker takes the rest.
FLEET_LAB_MODULES = (
    "test_fleetlab_by_hand.py",
    "test_bot.py",
    "test_fleet.py",
    "test_fleet_monitoring.py",
    "test_fleet_users_live.py",
)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: the fleet lab group, an integration module, or the test alone."""
    path = nodeid.split("::", 1)[0]
    if path.rsplit("/", 1)[-1] in FLEET_LAB_MODULES:
        return "fleetlab"
    return path if "/integration/" in f"/{path}" else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Units by `work_unit`, largest first (xdist's own `loadgroup` does not group under this pytest)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything alive once the tests are collected (modules, Hypothesis strategies, test items) lives to the end
    of the session: freezing it keeps the garbage collector's full passes, and the tests' own `gc.collect()`, to
    the objects the tests create (on this suite that saves seconds per hundred collections)."""
    gc.freeze()


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


def prefetch_agent_wheels() -> Path:
    """Rendering a bundle needs the agent's gRPC wheels (downloaded once per platform). Share them across data
    directories through OVPN_AGENT_WHEEL_CACHE (kept with the tools, outside git), and fetch them now, in the
    root namespace: the labs run `ovpn` inside namespaces without a route to the package index."""
    from ovpn.errors import OvpnError
    from ovpn.ops.agent_deps import AgentPlatform, dependency_wheels

    cache = Path(os.environ.setdefault("OVPN_AGENT_WHEEL_CACHE", str(agent_wheel_cache())))
    cache.mkdir(parents=True, exist_ok=True)
    # One fetch at a time (parallel test workers share the cache); on failure, the tests that render say so.
    with (
        held_lock(cache / ".fetch.lock", timeout=900, busy="another test run has been fetching the agent's wheels "
                  "for too long"),
        tempfile.TemporaryDirectory() as data_dir,
        contextlib.suppress(OvpnError),
    ):  # fmt: skip
        dependency_wheels(Path(data_dir), AgentPlatform())
    return cache


@pytest.fixture(scope="session")
def agent_wheels() -> Path:
    """The agent's real wheels, fetched with pip (network) once per machine: only for the tests that build the
    agent's image or run `ovpn` where there is no package index (the labs). Unit tests render with stand-ins."""
    return prefetch_agent_wheels()


@pytest.fixture
def tools_env() -> dict[str, str]:
    """The environment with `.ci/install-tools`' binaries on PATH, as `./ovpn` sets it up."""
    return {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{tools_bin_dir()}"}


@pytest.fixture
def xray_binary() -> Path:
    """The Xray binary from `.ci/install-tools` (the test is skipped when it is missing)."""
    return tool_path("xray")


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the first test that asks for `seeded` seeds the state that the others copy."""
    return tmp_path_factory.mktemp("seeded-template")


@pytest.fixture
def seeded(
    seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A data directory holding the seed's topology, selected through OVPN_DATA_DIR."""
    from tests.support.cli import seeded_copy

    return seeded_copy(seeded_template, tmp_path, monkeypatch, capsys)
