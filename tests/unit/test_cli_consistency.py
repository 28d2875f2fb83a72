"""One behaviour everywhere (issue 18, item 8): JSON errors under --json, the normalised `server status --json`,
`monitor status` of a stopped stack, service hints by role, "did you mean" for names, and the SSH port guard.
Host reads run against a ScriptedRemote in place of the SSH connection."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
import pytest
from tests.support.cli import run_cli
from tests.support.fake_remote import Reply, ScriptedRemote

from ovpn.cli.main import cli
from ovpn.cli.output import record_json_mode
from ovpn.core.model import Server
from ovpn.state.db import DB_FILE

MARKER = json.dumps({"revision": "20261203T120000Z-1a2b3c4d", "bundle_sha256": "ab" * 32})
LIVE = Reply(f"{MARKER}\n/opt/ovpn-releases/20261203T120000Z-1a2b3c4d\n")
MONITORING_DOWN = "prometheus, alertmanager, grafana, node-exporter, cadvisor, ovpn-telegram-bot"


def dump(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "state" / DB_FILE) as conn:
        return list(conn.iterdump())


def ps_line(service: str, state: str = "running", health: str = "", status: str = "Up 2 minutes") -> str:
    """One record as `docker compose ps --all --format json` prints it (Compose 2.29: one object per line)."""
    name = service if service.startswith("ovpn-") else f"ovpn-{service}"
    return json.dumps({
        "Command": '"/usr/bin/xray run"', "CreatedAt": "2026-12-03 12:00:00 +0000 UTC", "ExitCode": 0,
        "Health": health, "ID": f"{service}0123456789", "Image": f"example/{service}:1", "Labels": "a=b",
        "LocalVolumes": "0", "Mounts": "", "Name": name, "Names": name, "Networks": "ovpn-net",
        "Ports": "", "Project": "ovpn", "Publishers": None, "RunningFor": "2 minutes ago", "Service": service,
        "Size": "0B", "State": state, "Status": status,
    })  # fmt: skip


def use_host(monkeypatch: pytest.MonkeyPatch, module: str, remote: ScriptedRemote) -> None:
    monkeypatch.setattr(f"ovpn.ops.{module}.connect", lambda app, server, **options: remote)


def no_host(app: object, server: Server, **options: object) -> ScriptedRemote:
    raise AssertionError(f"{server.name} was contacted")


# JSON errors


def test_under_json_an_error_is_one_json_document_on_stdout_with_the_same_exit_code(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "server", "show", "nope", "--json")
    assert (code, err) == (1, "")
    assert json.loads(out) == {"error": "no server named 'nope'", "hint": "see `ovpn server list`"}
    code, out, err = run_cli(capsys, "server", "show", "nope")
    assert (code, out) == (1, "")
    assert err.splitlines() == ["error: no server named 'nope'", "hint: see `ovpn server list`"]


def test_under_json_a_refusal_without_a_hint_and_a_usage_error_are_json_too(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "server", "monitor", "down", "vpn-nl", "--purge-data", "--json")
    assert (code, err) == (1, "")
    assert json.loads(out) == {
        "error": "--purge-data with --json needs --yes", "hint": "add --yes to remove the volumes"
    }  # fmt: skip
    # --json comes last, after the option Click refuses: it is read first all the same.
    code, out, err = run_cli(capsys, "server", "monitor", "up", "vpn-nl", "--timeout", "5", "--json")
    assert (code, err) == (2, "")
    assert json.loads(out) == {
        "error": "Invalid value for '--timeout': 5 is not in the range 10<=x<=1800.",
        "hint": "see `ovpn server monitor up --help`",
    }
    code, out, err = run_cli(capsys, "server", "monitor", "up", "vpn-nl", "--timeout", "5")
    assert code == 2 and out == "" and "Invalid value for '--timeout'" in err


def test_json_as_the_value_of_another_option_is_not_json_mode(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "user", "show", "--username", "--json")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == "error: no user named '--json'"


def _json_options(command: click.Command, path: str = "ovpn") -> list[tuple[str, click.Parameter]]:
    found = [(path, p) for p in command.params if "--json" in getattr(p, "opts", [])]
    for name, sub in getattr(command, "commands", {}).items():
        found += _json_options(sub, f"{path} {name}")
    return found


def test_every_json_option_is_the_shared_one_that_switches_errors_to_json() -> None:
    found = _json_options(cli)
    assert len(found) > 20
    assert [path for path, p in found if p.callback is not record_json_mode or not p.is_eager] == []


# server status


def test_server_status_json_is_one_record_per_service_with_the_missing_runtime_service(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = (
        ScriptedRemote()
        .on("label=com.docker.compose.service=prometheus", reply=Reply())  # monitoring is not running
        .on("ps", "--all", reply=Reply(ps_line("xray") + "\n"))
    )
    use_host(monkeypatch, "fleet", remote)
    code, out, err = run_cli(capsys, "server", "status", "vpn-nl", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "server": "vpn-nl",
        "services": [
            {"service": "xray", "container": "ovpn-xray", "state": "running", "health": "", "status": "Up 2 minutes"},
            {"service": "ovpn-agent", "container": "", "state": "missing", "health": "", "status": ""},
        ],
    }  # fmt: skip


def test_server_status_lists_the_runtime_services_first_then_the_monitoring_ones(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        ps_line("cadvisor", health="healthy"),
        ps_line("haproxy"),
        ps_line("ovpn-agent", health="healthy"),
        ps_line("prometheus", state="exited", status="Exited (1) 5 seconds ago"),
        ps_line("xray"),
    ]
    remote = (
        ScriptedRemote()
        .on("label=com.docker.compose.service=prometheus", reply=Reply("0123abcd\n"))
        .on("ps", "--all", reply=Reply("\n".join(lines) + "\n"))
    )
    use_host(monkeypatch, "fleet", remote)
    code, out, err = run_cli(capsys, "server", "status", "proxy-ru", "--json")
    assert code == 0, err
    services = json.loads(out)["services"]
    assert [(s["service"], s["state"], s["health"]) for s in services] == [
        ("xray", "running", ""), ("ovpn-agent", "running", "healthy"), ("haproxy", "running", ""),
        ("cadvisor", "running", "healthy"), ("prometheus", "exited", ""),
    ]  # fmt: skip
    assert services[-1]["status"] == "Exited (1) 5 seconds ago"
    assert remote.ran("/opt/ovpn/docker-compose.monitoring.yml", "ps")  # the monitoring file was layered on


# monitor status


def monitoring_host(*lines: str) -> ScriptedRemote:
    """A deployed proxy without a bot token whose `compose ps` prints `lines`."""
    return (
        ScriptedRemote()
        .on(".ovpn-release.json", reply=LIVE)
        .on("test", "-s", reply=Reply(code=1))  # no bot token
        .on("ps", "--all", reply=Reply("".join(f"{line}\n" for line in lines)))
        .on(
            "sh", "-c", reply=Reply("1796212800\n")
        )  # the crash-loop probe: the host's clock, no container looping
    )


def test_monitor_status_after_monitor_down_is_stopped_with_exit_0(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = [ps_line("xray"), ps_line("ovpn-agent"), ps_line("haproxy")]
    use_host(monkeypatch, "monitor", monitoring_host(*runtime))
    code, out, err = run_cli(capsys, "server", "monitor", "status", "proxy-ru")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "proxy-ru: monitoring stopped (no monitoring container; start it with `ovpn server monitor up proxy-ru`)"
    ]
    code, out, err = run_cli(capsys, "server", "monitor", "status", "proxy-ru", "--json")
    doc = json.loads(out)
    assert code == 0 and (doc["stopped"], doc["ok"], doc["problems"]) == (True, True, [])
    assert {s["state"] for s in doc["services"]} == {"missing"}


def test_monitor_status_with_a_container_left_exited_is_down_with_exit_1(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    exited = ps_line("prometheus", state="exited", status="Exited (1) 5 seconds ago")
    use_host(monkeypatch, "monitor", monitoring_host(ps_line("xray"), exited))
    code, out, _ = run_cli(capsys, "server", "monitor", "status", "proxy-ru", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["stopped"] is False
    assert doc["problems"] == ["prometheus: exited", "alertmanager: missing", "grafana: missing",
                               "node-exporter: missing", "cadvisor: missing"]  # fmt: skip


# service hints


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (
            ("server", "logs", "vpn-nl", "--service", "haproxy"),
            "error: vpn-nl is a vpn server and runs no haproxy",
        ),
        (("restart", "vpn-nl", "--service", "haproxy"), "error: vpn-nl is a vpn server and runs no haproxy"),
        (("restart", "vpn-nl", "--service", "nginx"), "error: unknown service 'nginx'"),
    ],
)
def test_a_service_the_role_does_not_run_is_refused_with_the_roles_services_and_no_host_contact(
    seeded: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    first_line: str,
) -> None:
    monkeypatch.setattr("ovpn.ops.fleet.connect", no_host)
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.splitlines() == [first_line, f"hint: services of vpn-nl: xray, ovpn-agent, {MONITORING_DOWN}"]


def test_a_proxys_service_hint_names_haproxy(seeded: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr("ovpn.ops.fleet.connect", no_host)
    code, _, err = run_cli(capsys, "server", "logs", "proxy-ru", "--service", "nginx")
    assert code == 1
    assert err.splitlines() == [
        "error: unknown service 'nginx'",
        f"hint: services of proxy-ru: xray, ovpn-agent, haproxy, {MONITORING_DOWN}",
    ]


# did you mean


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (("server", "show", "vpn-nk"), ["error: no server named 'vpn-nk'", "hint: did you mean vpn-nl? see `ovpn server list`"]),
        (("deploy", "VPN-DE", "--plan"), ["error: no server named 'VPN-DE'", "hint: did you mean vpn-de? see `ovpn server list`"]),
        (("server", "show", "proxy"),
         ["error: no server named 'proxy'", "hint: did you mean proxy-2 or proxy-ru? see `ovpn server list`"]),
        (("server", "show", "nope"), ["error: no server named 'nope'", "hint: see `ovpn server list`"]),
        (("user", "show", "--username", "alise"),
         ["error: no user named 'alise'", "hint: did you mean alice? see `ovpn user list`"]),
        (("user", "show", "--username", "nobody"), ["error: no user named 'nobody'", "hint: see `ovpn user list`"]),
    ],
)  # fmt: skip
def test_an_unknown_name_offers_the_closest_known_names(
    seeded: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], lines: list[str]
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.splitlines() == lines


# the public port and the SSH port


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (("server", "add", "--name", "vpn-x", "--role", "vpn", "--host", "203.0.113.9", "--port", "22"),
         "error: --port 22 is the SSH port of vpn-x"),
        (("server", "set", "vpn-nl", "--port", "2222", "--ssh-port", "2222"), "error: --port 2222 is the SSH port of vpn-nl"),
        (("server", "set", "proxy-ru", "--ssh-port", "443"), "error: --port 443 is the SSH port of proxy-ru"),
    ],
)  # fmt: skip
def test_a_public_port_equal_to_the_ssh_port_is_refused_and_nothing_changes(
    seeded: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], first_line: str
) -> None:
    before = dump(seeded)
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.splitlines() == [
        first_line,
        "hint: Xray (HAProxy on a proxy) cannot listen where sshd does: give another --port (default 443)",
    ]
    assert dump(seeded) == before
