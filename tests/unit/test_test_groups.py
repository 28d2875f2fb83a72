"""The two test workers (tests/conftest.py): every module that uses the fleet lab runs in the fleet lab's group."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import FLEET_LAB_MODULES, work_unit

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def test_every_module_that_uses_the_fleet_lab_is_in_its_group() -> None:
    # A test that takes the fleet lab's engine or lab as a fixture, or starts the lab itself (`-m tests.fleetlab`).
    uses = re.compile(r"def test_\w+\([^)]*\b(fleet_lab|lab_engine)\b|\"-m\", \"tests\.fleetlab\"", re.S)
    users = {path.name for path in INTEGRATION.glob("test_*.py") if uses.search(path.read_text())}
    assert users == set(FLEET_LAB_MODULES)


def test_work_units_keep_an_integration_module_whole_and_unit_tests_apart() -> None:
    assert work_unit("tests/integration/test_fleet.py::test_x") == "fleetlab"
    assert work_unit("tests/integration/test_bot.py::test_y[a]") == "fleetlab"
    assert work_unit("tests/integration/test_demo.py::test_z") == "tests/integration/test_demo.py"
    assert work_unit("tests/unit/test_locks.py::test_a") == "tests/unit/test_locks.py::test_a"
