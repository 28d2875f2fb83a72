"""`server monitor`: compose ps records and Prometheus' API answers -> a monitoring status, and the bot rule."""

from __future__ import annotations

import json

import pytest

from ovpn.errors import OvpnError
from ovpn.facts.docker import parse_crash_loops
from ovpn.facts.prometheus import PrometheusView, parse_alerts, parse_targets
from ovpn.ops.host import bot_scale
from ovpn.ops.monitor import problems, service_states


def record(service: str, state: str = "running", health: str = "") -> dict[str, object]:
    return {
        "Service": service,
        "Name": f"ovpn-{service}",
        "State": state,
        "Health": health,
        "Status": "Up 1m",
    }


RUNNING = [
    record("xray"),
    record("prometheus", health="healthy"),
    record("alertmanager", health="healthy"),
    record("grafana"),
    record("node-exporter", health="healthy"),
    record("cadvisor"),
]


def targets_doc(*targets: tuple[str, str]) -> str:
    active = [
        {
            "labels": {"job": job, "instance": f"{job}:1"},
            "health": health,
            "lastError": "" if health == "up" else "x",
        }
        for job, health in targets
    ]
    return json.dumps({"status": "success", "data": {"activeTargets": active, "droppedTargets": []}})


def test_a_container_docker_restarted_a_moment_ago_is_crash_looping_even_while_it_shows_running() -> None:
    # `date -u +%s` then `docker inspect --format CRASH_LOOP_FORMAT`, as captured on a lab host (12:00:00 UTC).
    output = (
        "1796212800\n"
        "/ovpn-node-exporter-1 4 2026-12-02T11:59:58.301937114Z\n"  # restarted, up 2 s: looping
        "/ovpn-prometheus-1 0 2026-12-02T11:59:59.5Z\n"  # young but never restarted
        "/ovpn-grafana-1 2 2026-12-02T10:00:00.0Z\n"  # restarted two hours ago, stable since
    )
    assert parse_crash_loops(output) == {"ovpn-node-exporter-1": 4}
    assert parse_crash_loops("") == {}
    assert parse_crash_loops("1796212800\nunexpected docker output\n") == {}
    records = [{**r, "Name": f"ovpn-{r['Service']}-1"} for r in RUNNING]
    by = {s.service: s for s in service_states(records, False, parse_crash_loops(output))}
    looping = by["node-exporter"]
    assert looping.state == "running" and looping.failed and not looping.ready and not looping.ok
    assert looping.describe() == "running (healthy), crash-looping (4 restarts)"
    assert by["grafana"].ok and by["prometheus"].ok
    assert problems(list(by.values()), PrometheusView([], [], []), False) == [
        "node-exporter: running (healthy), crash-looping (4 restarts)"
    ]


def test_only_monitoring_services_in_stack_order_and_a_missing_one_is_reported() -> None:
    states = service_states(RUNNING[:-1], bot_configured=False)
    assert [s.service for s in states] == [
        "prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor", "ovpn-telegram-bot",
    ]  # fmt: skip
    by = {s.service: s for s in states}
    assert by["prometheus"].ok and by["grafana"].ok
    assert by["cadvisor"].state == "missing" and not by["cadvisor"].ok
    # Without a token the bot is not expected: no container is right, a running one is not.
    assert not by["ovpn-telegram-bot"].expected and by["ovpn-telegram-bot"].ok
    assert problems(states, None, bot_configured=False) == [
        "cadvisor: missing",
        "prometheus: its API did not answer",
    ]


def test_health_decides_readiness_and_failure() -> None:
    states = {
        s.service: s
        for s in service_states(
            [
                record("prometheus", health="starting"),
                record("alertmanager", health="unhealthy"),
                record("node-exporter", state="restarting"),
                record("grafana", state="exited"),
            ],
            bot_configured=True,
        )
    }
    assert not states["prometheus"].ready and not states["prometheus"].failed
    assert states["alertmanager"].failed and states["node-exporter"].failed and states["grafana"].failed
    assert states["ovpn-telegram-bot"].expected and states["ovpn-telegram-bot"].state == "missing"


def test_targets_are_parsed_and_a_down_target_is_a_problem_except_the_unconfigured_bot() -> None:
    targets = parse_targets(
        targets_doc(("haproxy", "up"), ("ovpn-telegram-bot", "down"), ("cadvisor", "unknown"))
    )
    assert [(t.job, t.health) for t in targets] == [
        ("cadvisor", "unknown"), ("haproxy", "up"), ("ovpn-telegram-bot", "down"),
    ]  # fmt: skip
    states = service_states(RUNNING, bot_configured=False)
    view = PrometheusView(targets, [], [])
    assert view.count("up") == 1 and view.count("down") == 1
    assert problems(states, view, bot_configured=False) == []
    bot_down = problems(
        service_states([*RUNNING, record("ovpn-telegram-bot")], True), view, bot_configured=True
    )
    assert bot_down == ["target ovpn-telegram-bot (ovpn-telegram-bot:1) down: x"]


def test_alerts_split_into_firing_and_pending() -> None:
    doc = {
        "status": "success",
        "data": {
            "alerts": [
                {"labels": {"alertname": "OvpnHaproxyBackendDown"}, "state": "firing"},
                {"labels": {"alertname": "OvpnHaproxyBackendDown"}, "state": "firing"},
                {"labels": {"alertname": "OvpnTelegramBotDown"}, "state": "pending"},
            ]
        },
    }
    assert parse_alerts(json.dumps(doc)) == (["OvpnHaproxyBackendDown"], ["OvpnTelegramBotDown"])


@pytest.mark.parametrize("answer", ["<html>", json.dumps({"status": "error", "error": "bad"})])
def test_a_broken_api_answer_is_a_clear_error(answer: str) -> None:
    with pytest.raises(OvpnError, match="/api/v1/targets"):
        parse_targets(answer)


def test_the_bot_is_scaled_to_zero_without_a_token() -> None:
    assert bot_scale(False) == ["--scale", "ovpn-telegram-bot=0"]
    assert bot_scale(True) == []
