"""`ovpn user ...` applied live through the agent on a real SSH + Docker host (the fleet lab): no Xray restart,
config.json persisted, the next deploy has nothing to do; when the agent cannot be reached, a deploy instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.fleetlab.hosts import FleetLab
from tests.integration.conftest import Operator, lab_operator, lab_server_options

pytestmark = pytest.mark.integration

HOST = "vpn-nl"
STATUS = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9090/users/status', timeout=10).read().decode())"


@pytest.fixture(scope="module")
def op(fleet_lab: FleetLab, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    operator = lab_operator(fleet_lab, tmp_path_factory.mktemp("operator-live"))
    operator.ok("server", "add", "--name", HOST, "--role", "vpn", "--host", fleet_lab.hosts[HOST].address,
                *lab_server_options(fleet_lab))  # fmt: skip
    operator.ok("user", "add", "--username", "alice")
    operator.ok("server", "init", HOST, "--accept-new-host-key", "--pull", "never")
    return operator


def xray_started(lab: FleetLab) -> str:
    return lab.exec(HOST, "docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", "ovpn-xray").strip()


def runtime(lab: FleetLab) -> dict[str, Any]:
    doc = json.loads(lab.exec(HOST, "docker", "exec", "ovpn-agent", "python3", "-c", STATUS))
    return {u["email"]: u for u in doc["users"]}


def config_emails(lab: FleetLab) -> set[str]:
    config = json.loads(lab.exec(HOST, "cat", "/opt/ovpn/xray/config.json"))
    return {c["email"] for c in config["inbounds"][0]["settings"]["clients"]}


def user(op: Operator, *argv: str) -> dict[str, Any]:
    return json.loads(op.ok("user", *argv, "--json"))  # type: ignore[no-any-return]


def test_a_user_change_is_live_without_restarting_xray(op: Operator, fleet_lab: FleetLab) -> None:
    before = xray_started(fleet_lab)
    started = time.monotonic()
    added = user(op, "add", "--username", "carol")
    elapsed = time.monotonic() - started
    assert [s["result"] for s in added["servers"]] == ["live"], added["servers"]
    assert "added carol@global" in added["servers"][0]["message"]
    assert runtime(fleet_lab)["carol@global"]["in_runtime"] is True
    assert "carol@global" in config_emails(fleet_lab)
    assert xray_started(fleet_lab) == before, "Xray must not restart for a user change"
    assert elapsed < 30
    # The host runs exactly the current render: a deploy has nothing to do.
    assert f"{HOST}: unchanged" in op.ok("deploy", HOST, "--pull", "never")

    disabled = user(op, "disable", "--username", "carol")
    assert disabled["servers"][0]["result"] == "live"
    assert runtime(fleet_lab)["carol@global"]["in_runtime"] is False
    assert "carol@global" not in config_emails(fleet_lab)
    user(op, "quota-set", "--username", "alice", "--gb", "1")
    assert runtime(fleet_lab)["alice@global"]["quota_bytes"] == 1024**3
    removed = op.ok("user", "rm", "--username", "carol")
    assert f"{HOST}: live" in removed
    assert "carol@global" not in runtime(fleet_lab)
    assert xray_started(fleet_lab) == before


def test_when_the_agent_cannot_be_reached_the_host_is_deployed_instead(
    op: Operator, fleet_lab: FleetLab
) -> None:
    fleet_lab.exec(HOST, "docker", "stop", "ovpn-agent")
    result = op.run("user", "add", "--username", "dave", "--json")
    assert result.returncode == 0, result.stderr
    server = json.loads(result.stdout)["servers"][0]
    assert server["result"] == "deployed" and "live path failed" in server["message"]
    assert "deploying instead" in result.stderr
    assert "dave@global" in config_emails(fleet_lab)
    assert runtime(fleet_lab)["dave@global"]["in_runtime"] is True
