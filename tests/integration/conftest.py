"""Fixtures for tests against real hosts (the fleet lab)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import missing_tool, tool_path
from tests.fleetlab.operator import Operator, lab_operator, lab_server_options

# The fleet tests import these from here.
__all__ = ["Operator", "lab_operator", "lab_server_options"]
BY_HAND = "test_fleetlab_by_hand.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The by-hand lab's check (BY_HAND) runs `python -m tests.fleetlab`, which takes the machine's lab lock
    itself: it must run before the module of the first test that holds that lock for the rest of the session
    (`lab_engine`)."""
    by_hand = [item for item in items if item.path.name == BY_HAND]
    rest = [item for item in items if item.path.name != BY_HAND]
    first = next(
        (n for n, item in enumerate(rest) if "lab_engine" in getattr(item, "fixturenames", ())), len(rest)
    )
    while 0 < first < len(rest) and rest[first - 1].path == rest[first].path:
        first -= 1
    items[:] = rest[:first] + by_hand + rest[first:]


@pytest.fixture(scope="session")
def lab_engine() -> Iterator[object]:
    """The fleet lab's private Docker engine, held under the lab lock for the whole session (one lab per machine;
    every test that needs the engine or the lab goes through this fixture, never through the lock again)."""
    from tests.fleetlab.session import locked_engine, missing_requirement

    reason = missing_requirement()
    if reason is not None:
        missing_tool(reason)
    with locked_engine() as engine:
        yield engine


@pytest.fixture(scope="session")
def fleet_lab(
    lab_engine: object, agent_wheels: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """The fleet lab's hosts; ovpn runs in its controller's namespace, which has no route to the package index,
    so the agent's wheels are fetched first (`agent_wheels`)."""
    from tests.fleetlab.engine import Engine
    from tests.fleetlab.session import running_lab

    assert isinstance(lab_engine, Engine)
    with running_lab(lab_engine, tmp_path_factory.mktemp("fleetlab"), tool_path("xray")) as lab:
        yield lab
