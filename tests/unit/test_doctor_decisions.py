"""What doctor concludes from a host's answers, against a scripted host: unreachable, healthy, a pool with a
backend down, a connection lost half-way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.support.fake_remote import UNREACHABLE, Reply, ScriptedRemote
from tests.support.topology import BACKEND_1, PROXY, RELAY_UUID

from ovpn.core.model import Server
from ovpn.ops.doctor import REMOTE_CHECKS, Check, host_checks, worst
from ovpn.ops.render import RenderedServer

CAPTURED = Path(__file__).parent / "captured"
MARKER = json.dumps({"revision": "20261203T120000Z-1a2b3c4d", "bundle_sha256": "ab" * 32}, indent=2)


def ps(*services: str) -> Reply:
    return Reply("".join(json.dumps({"Service": s, "Name": f"ovpn-{s}", "State": "running", "Health": ""}) + "\n"
                         for s in services))  # fmt: skip


def relay_config(server: Server) -> str:
    return json.dumps({"inbounds": [{
        "settings": {"clients": [{"id": RELAY_UUID, "email": "proxy-service@cluster"}]},
        "streamSettings": {"realitySettings": {"shortIds": [server.reality_short_id]}},
    }]})  # fmt: skip


def agent_answers(metrics: str) -> Callable[[tuple[str, ...]], Reply]:
    """The agent's container: a healthy agent, and HAProxy's metrics."""

    def answer(argv: tuple[str, ...]) -> Reply:
        return Reply('{"status": "ok"}') if "/health" in argv[-1] else Reply(metrics)

    return answer


def healthy_host(server: Server, services: tuple[str, ...], metrics: str = "") -> ScriptedRemote:
    """A deployed host whose monitoring stack was never started."""
    return (
        ScriptedRemote()
        .on("/opt/ovpn/docker-compose.monitoring.yml", reply=Reply())  # monitoring: no containers
        .on("test", "-s", reply=Reply(code=1))  # no bot token
        .on("true", reply=Reply())
        .on("docker", "version", reply=Reply("27.3.1\n"))
        .on("docker", "compose", "version", reply=Reply("2.29.7\n"))
        .on(".ovpn-release.json", reply=Reply(f"{MARKER}\n/opt/ovpn-releases/20261203T120000Z-1a2b3c4d\n"))
        .on("test", "-f", reply=Reply())
        .on("ps", "--all", reply=ps(*services))
        .on("docker", "exec", "ovpn-agent", "python3", "-c", reply=agent_answers(metrics))
        .on("df", reply=Reply("Use% Mounted on\n 24% /\n 30% /opt\n"))
        .on("cat", "/opt/ovpn/xray/config.json", reply=Reply(relay_config(server)))
    )


def statuses(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def test_an_unreachable_host_fails_ssh_once_and_skips_every_remote_check() -> None:
    remote = ScriptedRemote().on("true", reply=UNREACHABLE)
    checks = host_checks(remote, BACKEND_1, None, [], progress=lambda _: None)
    assert checks[0] == Check(
        "ssh", "fail", "cannot reach deploy@vpn-1.test:22: ssh: connect to host vpn-1.test port 22: Connection refused",
        "check --host, --ssh-port and the firewall",
    )  # fmt: skip
    assert [(c.name, c.status) for c in checks[1:]] == [(name, "skip") for name in REMOTE_CHECKS]
    assert remote.calls == [("true",)] and worst(checks) == 2


def test_a_healthy_backend_passes_and_its_relay_identity_is_checked_for_its_proxies() -> None:
    remote = healthy_host(BACKEND_1, ("xray", "ovpn-agent"))
    checks = host_checks(remote, BACKEND_1, None, ["proxy-ru"], progress=lambda _: None)
    assert statuses(checks) == {
        "ssh": "pass", "sudo": "pass", "docker": "pass", "compose": "pass", "files": "pass", "services": "pass",
        "agent health": "pass", "disk": "pass", "relay identity": "pass", "monitoring": "skip",
    }  # fmt: skip
    by = {c.name: c for c in checks}
    assert by["disk"].message == "/opt is 30% full"
    assert by["files"].message == "20261203T120000Z-1a2b3c4d is live and matches the state"
    assert worst(checks) == 0


def test_a_backend_without_the_relay_identity_fails_naming_its_proxies() -> None:
    remote = healthy_host(BACKEND_1, ("xray", "ovpn-agent"))
    remote.rules.insert(
        0, ScriptedRemote().on("cat", "/opt/ovpn/xray/config.json", reply=Reply("{}")).rules[0]
    )
    by = {c.name: c for c in host_checks(remote, BACKEND_1, None, ["proxy-ru"], progress=lambda _: None)}
    assert by["relay identity"].status == "fail"
    assert "proxy-ru get `invalid request user id`" in by["relay identity"].message
    assert by["relay identity"].hint == "redeploy this backend first: ovpn deploy vpn-nl; then the proxy"


def test_a_proxy_with_one_backend_down_warns_with_each_backends_state() -> None:
    metrics = (CAPTURED / "haproxy-3.0-metrics-one-up-one-down.txt").read_text()
    remote = healthy_host(PROXY, ("xray", "ovpn-agent", "haproxy"), metrics)
    by = {c.name: c for c in host_checks(remote, PROXY, None, [], progress=lambda _: None)}
    assert (by["backend pool"].status, by["backend pool"].message) == ("warn", "vpn-de DOWN, vpn-nl UP")
    assert by["services"].status == "pass"


def test_a_stopped_service_fails_with_the_command_that_shows_its_logs() -> None:
    remote = healthy_host(BACKEND_1, ("xray",))
    by = {c.name: c for c in host_checks(remote, BACKEND_1, None, [], progress=lambda _: None)}
    assert (by["services"].status, by["services"].message) == ("fail", "not running: ovpn-agent")
    assert by["services"].hint == "ovpn server logs vpn-nl --service ovpn-agent"


def test_a_connection_lost_half_way_is_one_remote_failure_after_the_checks_made() -> None:
    remote = healthy_host(BACKEND_1, ("xray", "ovpn-agent"))
    remote.rules.insert(0, ScriptedRemote().on("df", reply=UNREACHABLE).rules[0])
    checks = host_checks(remote, BACKEND_1, None, [], progress=lambda _: None)
    assert [c.name for c in checks][-2:] == ["agent health", "remote"]
    assert checks[-1].status == "fail" and checks[-1].message.startswith("cannot reach deploy@vpn-1.test:22")


def test_the_pool_warning_names_each_down_backends_doctor_and_deploy() -> None:
    metrics = (CAPTURED / "haproxy-3.0-metrics-one-up-one-down.txt").read_text()
    remote = healthy_host(PROXY, ("xray", "ovpn-agent", "haproxy"), metrics)
    by = {c.name: c for c in host_checks(remote, PROXY, None, [], progress=lambda _: None)}
    assert (
        by["backend pool"].hint == "check each DOWN backend: `ovpn doctor vpn-de`, then `ovpn deploy vpn-de`"
    )
    all_down = metrics.replace('server="vpn-nl",state="UP"} 1', 'server="vpn-nl",state="DOWN"} 1')
    remote = healthy_host(PROXY, ("xray", "ovpn-agent", "haproxy"), all_down)
    by = {c.name: c for c in host_checks(remote, PROXY, None, [], progress=lambda _: None)}
    assert (by["backend pool"].status, by["backend pool"].hint) == (
        "fail",
        "every backend is down: foreign traffic fails closed; check each: `ovpn doctor vpn-de`, then "
        "`ovpn deploy vpn-de`; `ovpn doctor vpn-nl`, then `ovpn deploy vpn-nl`",
    )


def test_an_xray_image_that_is_not_on_the_host_hints_at_the_version_not_force() -> None:
    rendered = RenderedServer(BACKEND_1, {}, {"xray": "ghcr.io/xtls/xray-core:99.9.9"})
    remote = healthy_host(BACKEND_1, ("xray", "ovpn-agent"))
    no_image = "docker: Error response from daemon: No such image: ghcr.io/xtls/xray-core:99.9.9.\n"
    remote.rules.insert(
        0, ScriptedRemote().on("docker", "run", reply=Reply(stderr=no_image, code=125)).rules[0]
    )
    by = {c.name: c for c in host_checks(remote, BACKEND_1, rendered, [], progress=lambda _: None)}
    test = by["xray config test"]
    assert (test.status, test.message) == (
        "fail", "Error response from daemon: No such image: ghcr.io/xtls/xray-core:99.9.9."
    )  # fmt: skip
    assert test.hint == (
        "the Xray image for version 26.7.28 is not on the host or not published: check the version and set one "
        "that is (ovpn server set vpn-nl --xray-version V), then deploy"
    )
