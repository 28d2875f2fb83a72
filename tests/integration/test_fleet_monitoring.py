"""`ovpn server monitor up|down|status` on real SSH + Docker hosts (the fleet lab), with the lab's locally built
monitoring images: Debian's Prometheus, Alertmanager and node exporter, and stand-ins for Grafana and cAdvisor.

Tests in this module run in order and share one operator state (its own data dir, its own `server init`).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest
from tests.fleetlab.hosts import FleetLab
from tests.fleetlab.images import MONITORING_IMAGES
from tests.integration.conftest import Operator, lab_operator, lab_server_options
from tests.support.topology import lab_geodata

from ovpn.ops.monitor import BOT_NOT_CONFIGURED, VOLUMES
from ovpn.render.monitoring.spec import MONITORING_CONTAINERS

pytestmark = pytest.mark.integration

PROXY = "proxy-ru"
FRESH = "vpn-de"  # never deployed by this module's operator
MONITORING = ("prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor")
RUNTIME = ("xray", "haproxy", "ovpn-agent")
# Containers the rendered container alerts watch on a proxy (the bot is not set up in this module).
WATCHED = ("ovpn-xray", "ovpn-haproxy", "ovpn-agent", "ovpn-prometheus", "ovpn-alertmanager", "ovpn-grafana",
           "ovpn-node-exporter", "ovpn-cadvisor")  # fmt: skip


@pytest.fixture(scope="module")
def op(fleet_lab: FleetLab, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    operator = lab_operator(fleet_lab, tmp_path_factory.mktemp("operator-monitoring"), lab_geodata())
    common = lab_server_options(fleet_lab)
    operator.ok("server", "add", "--name", PROXY, "--role", "proxy", "--proxy-preset", "ru",
                "--host", fleet_lab.hosts[PROXY].address, "--domain", "proxy-ru.lab", *common)  # fmt: skip
    operator.ok(
        "server", "add", "--name", FRESH, "--role", "vpn", "--host", fleet_lab.hosts[FRESH].address, *common
    )
    operator.ok("user", "add", "--username", "alice")
    return operator


def containers(lab: FleetLab, host: str) -> dict[str, dict[str, str]]:
    """service -> {id, state, health} of the host's ovpn containers, as the host's engine sees them."""
    out = lab.exec(host, "docker", "ps", "--all", "--filter", "label=com.docker.compose.project=ovpn",
                   "--format", "{{.ID}} {{.Label \"com.docker.compose.service\"}} {{.State}}")  # fmt: skip
    found = {}
    for line in out.splitlines():
        container_id, service, state = line.split()
        found[service] = {"id": container_id, "state": state}
    return found


def volumes(lab: FleetLab, host: str) -> set[str]:
    return set(lab.exec(host, "docker", "volume", "ls", "--format", "{{.Name}}").split())


def monitor_status(op: Operator) -> tuple[int, dict[str, Any]]:
    result = op.run("server", "monitor", "status", PROXY, "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_monitor_up_on_a_never_deployed_host_is_refused_and_changes_nothing(
    op: Operator, fleet_lab: FleetLab
) -> None:
    # In a full session an earlier module may have deployed this host: hide its live release for this test only.
    moved = fleet_lab.exec(FRESH, "sh", "-c", "test -L /opt/ovpn && mv -T /opt/ovpn /opt/ovpn.hidden-by-test && echo moved",
                           check=False).strip() == "moved"  # fmt: skip
    try:
        before = (containers(fleet_lab, FRESH), volumes(fleet_lab, FRESH))
        result = op.run("server", "monitor", "up", FRESH, "--pull", "never", "--accept-new-host-key")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"error: {FRESH} has no live release" in result.stderr
        assert f"hint: ovpn server init {FRESH}" in result.stderr
        assert (containers(fleet_lab, FRESH), volumes(fleet_lab, FRESH)) == before
        assert (
            fleet_lab.exec(FRESH, "sh", "-c", "test -e /opt/ovpn || echo absent", check=False).strip()
            == "absent"
        )
    finally:
        if moved:
            fleet_lab.exec(FRESH, "mv", "-T", "/opt/ovpn.hidden-by-test", "/opt/ovpn")


def image_ids(lab: FleetLab, host: str, refs: list[str]) -> dict[str, str]:
    out = lab.exec(host, "docker", "image", "inspect", "--format", "{{.Id}}", *refs)
    return dict(zip(refs, out.split(), strict=True))


def test_monitoring_images_a_host_lacks_are_copied_from_another_host(
    op: Operator, fleet_lab: FleetLab
) -> None:
    """The seed's step 7: a host that cannot pull (the lab has no registry at all) gets its monitoring images from
    another host through the operator's two SSH connections; the module's `monitor up` (--pull never) then runs."""
    refs = sorted(set(MONITORING_IMAGES.values()))
    # As on a fresh host: no monitoring container (an earlier module may have left its stack) and none of its images.
    fleet_lab.exec(PROXY, "docker", "rm", "-f", *MONITORING_CONTAINERS.values(), check=False)
    fleet_lab.exec(PROXY, "docker", "rmi", *refs)
    listed = json.loads(op.ok("server", "images", "list", PROXY, "--accept-new-host-key", "--json"))
    present = {row["service"]: row["present"] for row in listed["images"]}
    assert {s: present[s] for s in MONITORING} == dict.fromkeys(MONITORING, False), listed
    assert present["xray"] and present["haproxy"] and present["ovpn-agent-base"], listed

    plan = op.ok("server", "images", "copy", "--from", FRESH, "--to", PROXY, "--plan").splitlines()
    assert plan[0].startswith(f"would copy {len(refs)} images (") and plan[0].endswith(
        f" MiB) from {FRESH} to {PROXY}:"
    )
    assert sorted(line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in plan[1:]) == refs, plan
    # The plan touched nothing.
    assert fleet_lab.exec(PROXY, "sh", "-c", 'for ref; do docker images -q "$ref"; done', "sh", *refs) == ""

    started = time.monotonic()
    result = op.run("server", "images", "copy", "--from", FRESH, "--to", PROXY)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        result.stdout.startswith(f"copied {len(refs)} images (")
        and f"every image id matches {FRESH}'s" in result.stdout
    )
    assert f"[{PROXY}] copying {refs[0]} (" in result.stderr
    assert image_ids(fleet_lab, PROXY, refs) == image_ids(fleet_lab, FRESH, refs)
    print(f"\nimages copy ({elapsed:.1f}s wall): {result.stdout.strip()}")
    again = json.loads(op.ok("server", "images", "copy", "--from", FRESH, "--to", PROXY, "--json"))
    assert again["images"] == [] and again["copied"] == [] and len(again["present"]) == len(MONITORING)


def test_monitor_up_starts_the_stack_with_the_bot_at_zero(op: Operator, fleet_lab: FleetLab) -> None:
    op.ok("server", "init", PROXY, "--accept-new-host-key", "--pull", "never")
    runtime_before = {s: c["id"] for s, c in containers(fleet_lab, PROXY).items() if s in RUNTIME}
    assert set(runtime_before) == set(RUNTIME)
    started = time.monotonic()
    result = op.run("server", "monitor", "up", PROXY, "--pull", "never", "--json")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["bot_configured"] is False and doc["messages"] == [BOT_NOT_CONFIGURED]
    found = containers(fleet_lab, PROXY)
    assert {s: found[s]["state"] for s in MONITORING} == dict.fromkeys(MONITORING, "running")
    assert "ovpn-telegram-bot" not in found, "the bot runs only with a token"
    # The runtime was not touched.
    assert {s: found[s]["id"] for s in RUNTIME} == runtime_before
    print(f"\nmonitor up (with the health wait): {elapsed:.1f}s")
    # Again, as text: nothing changes, the health wait's progress and the bot's state are printed.
    again = op.run("server", "monitor", "up", PROXY, "--pull", "never")
    assert again.returncode == 0, again.stderr
    assert BOT_NOT_CONFIGURED in again.stdout
    assert f"[{PROXY}] prometheus: running (healthy)" in again.stderr
    assert {s: c["id"] for s, c in containers(fleet_lab, PROXY).items()} == {
        s: c["id"] for s, c in found.items()
    }


def test_monitor_status_shows_the_services_and_prometheus_targets(op: Operator) -> None:
    # Prometheus scrapes every 30 s: wait (bounded) for its first full round.
    deadline = time.monotonic() + 120
    started = time.monotonic()
    while True:
        code, doc = monitor_status(op)
        targets = {t["job"]: t["health"] for t in (doc["prometheus"] or {}).get("targets", [])}
        every_target_up = "haproxy" in targets and set(targets.values()) == {"up"}
        if (code == 0 and every_target_up) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert code == 0, json.dumps(doc, indent=2)
    print(f"\nall Prometheus targets up after {time.monotonic() - started:.1f}s")
    services = {s["service"]: s for s in doc["services"]}
    assert all(services[s]["state"] == "running" and services[s]["ok"] for s in MONITORING)
    assert services["prometheus"]["health"] == "healthy"
    assert services["ovpn-telegram-bot"]["expected"] is False
    assert targets["haproxy"] == "up", targets
    for job in ("prometheus", "alertmanager", "node-exporter", "cadvisor", "ovpn-agent"):
        assert targets[job] == "up", targets
    # Not set up (no `server monitor telegram-setup`): the bot is not even scraped.
    assert "ovpn-telegram-bot" not in targets
    assert doc["prometheus"]["targets_up"] == len(targets)
    assert isinstance(doc["prometheus"]["alerts_firing"], list)


def test_cadvisor_reports_the_hosts_containers_by_name(fleet_lab: FleetLab) -> None:
    """The real cAdvisor (its library, tests/tools/cadvisor) in the host's Compose project, with the rendered
    flags, reads the host engine's containers: the series the container alerts select by `name` exist."""
    query = urllib.parse.urlencode({"query": f'container_last_seen{{name=~"{"|".join(WATCHED)}"}}'})
    url = f"http://127.0.0.1:9090/api/v1/query?{query}"
    deadline = time.monotonic() + 90
    while True:
        doc = json.loads(fleet_lab.exec(PROXY, "docker", "exec", "ovpn-prometheus", "wget", "-qO-", url))
        names = {row["metric"]["name"] for row in doc["data"]["result"]}
        if names == set(WATCHED) or time.monotonic() > deadline:
            break
        time.sleep(3)
    logs = fleet_lab.exec(PROXY, "sh", "-c", "docker logs --tail 30 ovpn-cadvisor 2>&1", check=False)
    assert names == set(WATCHED), f"{names}\ncAdvisor's log:\n{logs}"
    # cAdvisor's own /metrics: the CPU counter the restart alerts count resets of, per container.
    metrics = fleet_lab.exec(
        PROXY, "docker", "exec", "ovpn-cadvisor", "wget", "-qO-", "http://127.0.0.1:8080/metrics"
    )
    assert "container_cpu_usage_seconds_total{" in metrics and 'name="ovpn-haproxy"' in metrics


def doctor_checks(op: Operator) -> tuple[int, dict[str, dict[str, str]]]:
    result = op.run("doctor", PROXY, "--json")
    assert result.stdout, result.stderr
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_checks_the_running_stack_and_lists_firing_alerts(op: Operator) -> None:
    code, status = monitor_status(op)
    assert code == 0, status
    exit_code, checks = doctor_checks(op)
    # No backend is attached in this module: the pool warns (exit 1), monitoring itself passes.
    assert exit_code == 1 and checks["backend pool"]["status"] == "warn", checks
    assert checks["monitoring"]["status"] == "pass", checks["monitoring"]
    assert checks["monitoring"]["message"].startswith(
        f"{len(MONITORING)} services ready, Prometheus scrapes "
    )
    # The alerts check reports what Prometheus reports (read again: an alert may have changed state since).
    firing = set(monitor_status(op)[1]["prometheus"]["alerts_firing"]) | set(
        status["prometheus"]["alerts_firing"]
    )
    alerts = checks["alerts"]
    if alerts["status"] == "pass":
        assert alerts["message"] == "no alert is firing"
    else:
        assert alerts["status"] == "warn" and alerts["message"].startswith("firing: "), alerts
        assert set(alerts["message"].removeprefix("firing: ").split(", ")) <= firing, (alerts, firing)


def test_a_deploy_keeps_monitoring_running_and_the_bot_at_zero(op: Operator, fleet_lab: FleetLab) -> None:
    op.ok("deploy", PROXY, "--force", "--pull", "never")
    found = containers(fleet_lab, PROXY)
    assert {s: found[s]["state"] for s in (*MONITORING, *RUNTIME)} == dict.fromkeys(
        (*MONITORING, *RUNTIME), "running"
    )
    assert "ovpn-telegram-bot" not in found
    result = op.run("server", "monitor", "status", PROXY)
    assert BOT_NOT_CONFIGURED in result.stdout


def test_monitor_down_removes_only_monitoring_and_keeps_the_data(op: Operator, fleet_lab: FleetLab) -> None:
    runtime_before = {s: c["id"] for s, c in containers(fleet_lab, PROXY).items() if s in RUNTIME}
    assert "volumes kept" in op.ok("server", "monitor", "down", PROXY)
    found = containers(fleet_lab, PROXY)
    assert set(found) == set(RUNTIME)
    assert {s: (c["id"], c["state"]) for s, c in found.items()} == {
        s: (i, "running") for s, i in runtime_before.items()
    }
    assert set(VOLUMES) <= volumes(fleet_lab, PROXY)
    code, doc = monitor_status(op)
    assert code == 0 and doc["stopped"] is True and doc["problems"] == []
    assert doctor_checks(op)[1]["monitoring"]["status"] == "skip"
    # A deploy now leaves monitoring off.
    op.ok("deploy", PROXY, "--force", "--pull", "never")
    assert set(containers(fleet_lab, PROXY)) == set(RUNTIME)
    # --purge-data removes the volumes (after --yes).
    refused = op.run("server", "monitor", "down", PROXY, "--purge-data", "--json")
    assert (
        refused.returncode == 1
        and json.loads(refused.stdout)["error"] == "--purge-data with --json needs --yes"
    )
    purged = json.loads(op.ok("server", "monitor", "down", PROXY, "--purge-data", "--yes", "--json"))
    assert sorted(purged["removed_volumes"]) == sorted(VOLUMES)
    assert not set(VOLUMES) & volumes(fleet_lab, PROXY)


def test_a_service_that_dies_fails_monitor_up_with_its_name_and_logs(
    op: Operator, fleet_lab: FleetLab
) -> None:
    # Alertmanager's binary as the node exporter: it starts, rejects the rendered node-exporter flags and exits.
    op.ok("server", "set", PROXY, "--image", f"node-exporter={MONITORING_IMAGES['alertmanager']}")
    op.ok("deploy", PROXY, "--pull", "never")
    try:
        started = time.monotonic()
        result = op.run("server", "monitor", "up", PROXY, "--pull", "never", "--timeout", "120")
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stdout + result.stderr
        assert "error: monitoring on proxy-ru: node-exporter failed (" in result.stderr
        assert "last log lines of node-exporter:" in result.stderr
        assert "path.procfs" in result.stderr  # Alertmanager's complaint about the flag, from the logs
        assert elapsed < 100, "a dead service must fail the wait at once, not at the timeout"
        print(f"\nmonitor up failed on the dead service after {elapsed:.1f}s")
        exit_code, checks = doctor_checks(op)
        assert exit_code == 1 and checks["monitoring"]["status"] == "warn", checks["monitoring"]
        assert "node-exporter: " in checks["monitoring"]["message"]
        assert checks["monitoring"]["hint"] == f"ovpn server monitor status {PROXY}"
    finally:
        op.ok("server", "monitor", "down", PROXY)
        op.ok("server", "set", PROXY, "--image", f"node-exporter={MONITORING_IMAGES['node-exporter']}")
        op.ok("deploy", PROXY, "--pull", "never")
    found = containers(fleet_lab, PROXY)
    assert {s: c["state"] for s, c in found.items()} == dict.fromkeys(RUNTIME, "running")
