"""Every rendered dashboard passes Grafana's own schema (the Grafana Foundation SDK, through the checker in
tests/tools/grafana-schema), and the checker fails on a misspelt key, a wrong type and an unknown key."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import tool_path
from tests.integration.test_monitoring_validators import IMAGES, ROLES, VARIANTS
from tests.support.topology import request

from ovpn.render.bundle import Bundle
from ovpn.render.monitoring import MonitoringSpec, render_monitoring
from ovpn.render.server_bundle import render_server_bundle

pytestmark = pytest.mark.integration

DASHBOARDS = "monitoring/grafana/dashboards/"
CASES = [*ROLES, *VARIANTS]


def rendered(case: str) -> Bundle:
    if case in VARIANTS:
        return render_server_bundle(request(VARIANTS[case]))
    return render_monitoring(MonitoringSpec(f"{case}-ru", case, IMAGES))  # type: ignore[arg-type]


def write_dashboards(bundle: Bundle, root: Path) -> list[str]:
    names = []
    for path, file in bundle.items():
        if path.startswith(DASHBOARDS) and path.endswith(".json"):
            name = path.removeprefix(DASHBOARDS)
            (root / name).write_bytes(file.content)
            names.append(name)
    return sorted(names)


def check(root: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool_path("grafana-schema")), *names],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_dashboard_passes_the_schema(case: str, tmp_path: Path) -> None:
    names = write_dashboards(rendered(case), tmp_path)
    assert {"ovpn-host.json", "ovpn-containers.json", "ovpn-agent.json", "ovpn-users.json"} <= set(names)
    result = check(tmp_path, *names)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# Each mutation of the host dashboard (panels[1] is its first panel after the "Overview" row) and the only line
# the checker must print for it.
MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misspelt panel key": (
        lambda board: rename(board["panels"][1], "gridPos", "gridPoss"),
        "panels[1].Panel: unexpected field 'gridPoss'",
    ),
    "string for a number": (
        lambda board: board["panels"][1]["gridPos"].update(h="4"),
        "panels[1].gridPos.h: json: cannot unmarshal string into Go value of type uint32",
    ),
    "unknown top-level key": (
        lambda board: board.update(sharedCrosshair=True),
        "Dashboard: unexpected field 'sharedCrosshair'",
    ),
    "misspelt fieldConfig key": (
        lambda board: rename(board["panels"][1]["fieldConfig"]["defaults"], "thresholds", "thresholdz"),
        "panels[1].fieldConfig.defaults.FieldConfig: unexpected field 'thresholdz'",
    ),
    "misspelt query key": (
        lambda board: board["panels"][1]["targets"][0].update(instantt=True),
        "panels[1].targets[0].Dataquery: unexpected field 'instantt'",
    ),
    "required field Grafana does not fill": (
        lambda board: board.pop("schemaVersion"),
        "schemaVersion: required field is missing from input",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_mutated_dashboard_fails_with_one_line(mutation: str, tmp_path: Path) -> None:
    (tmp_path / "pristine.json").write_bytes(rendered("vpn")[DASHBOARDS + "ovpn-host.json"].content)
    board = json.loads((tmp_path / "pristine.json").read_text())
    assert board["panels"][0]["type"] == "row"
    assert board["panels"][1]["type"] == "stat"
    mutate, expected = MUTATIONS[mutation]
    mutate(board)
    (tmp_path / "ovpn-host.json").write_text(json.dumps(board, indent=2))
    assert check(tmp_path, "pristine.json").returncode == 0
    result = check(tmp_path, "ovpn-host.json")
    assert (result.returncode, result.stdout.splitlines(), result.stderr) == (
        1,
        [f"ovpn-host.json: {expected}"],
        "",
    )


def test_stdin_and_several_files_name_each_problem(tmp_path: Path) -> None:
    board = json.loads(rendered("vpn")[DASHBOARDS + "ovpn-host.json"].content)
    board["bogus"] = 1
    (tmp_path / "a.json").write_text(json.dumps(board))
    (tmp_path / "b.json").write_text(json.dumps(board))
    result = check(tmp_path, "a.json", "b.json")
    assert result.stdout.splitlines() == [
        "a.json: Dashboard: unexpected field 'bogus'",
        "b.json: Dashboard: unexpected field 'bogus'",
    ]
    piped = subprocess.run(
        [str(tool_path("grafana-schema"))], input="{", capture_output=True, text=True, timeout=60, check=False
    )
    assert (piped.returncode, piped.stdout) == (1, "-: $: unexpected end of JSON input\n")
