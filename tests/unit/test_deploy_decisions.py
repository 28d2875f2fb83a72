"""What deploy decides from a host's answers: the health gate, the logs it shows, and the rollback, against a
scripted host (the same decisions run against real hosts in the fleet lab)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.fake_remote import Reply, ScriptedRemote
from tests.support.topology import BACKEND_1, PROXY

from ovpn.core.model import Server
from ovpn.errors import OvpnError
from ovpn.facts.release import LiveRelease
from ovpn.ops.deploy import (
    Attempt,
    DeployOptions,
    DeployOutcome,
    GateCheck,
    GateResult,
    deploy_failed,
    failing_service,
    go_live,
    health_gate,
    rollback,
    validate_on_host,
)
from ovpn.ops.host import Host

CAPTURED = Path(__file__).parent / "captured"
ONE_UP = (CAPTURED / "haproxy-3.0-metrics-one-up-one-down.txt").read_text()
ALL_DOWN = ONE_UP.replace('server="vpn-nl",state="UP"} 1', 'server="vpn-nl",state="UP"} 0').replace(
    'server="vpn-nl",state="DOWN"} 0', 'server="vpn-nl",state="DOWN"} 1'
)
HEALTHY_AGENT = Reply('{"status": "ok"}\n')


@dataclass
class FakeClock:
    """Time that passes only when the code under test sleeps."""

    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def ps(*containers: tuple[str, str, str, str], up: str = "Up 2 seconds") -> Reply:
    """`docker compose ps --format json` lines for (service, state, health, id); `up` is Docker's Status text."""
    lines = [json.dumps({"Service": s, "Name": f"ovpn-{s}", "State": st, "Health": h, "ID": i, "Status": up})
             for s, st, h, i in containers]  # fmt: skip
    return Reply("\n".join(lines) + "\n")


VPN_UP = ps(("xray", "running", "", "x1"), ("ovpn-agent", "running", "healthy", "a1"))
PROXY_UP = ps(
    ("xray", "running", "", "x1"),
    ("ovpn-agent", "running", "healthy", "a1"),
    ("haproxy", "running", "", "h1"),
)


def host_for(server: Server, remote: ScriptedRemote) -> Host:
    return Host(remote, server)


def gate(
    server: Server,
    remote: ScriptedRemote,
    expect_backend_up: bool = False,
    timeout: int = 90,
    said: list[str] | None = None,
) -> GateResult:
    clock = FakeClock()
    progress = said.append if said is not None else lambda line: None
    return health_gate(host_for(server, remote), expect_backend_up, timeout, progress, sleep=clock.sleep,
                       clock=clock)  # fmt: skip


def test_a_healthy_vpn_server_passes_every_check_after_settling() -> None:
    remote = (
        ScriptedRemote()
        .on("ps", "--all", reply=VPN_UP)
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", "ovpn-agent", reply=HEALTHY_AGENT)
    )
    result = gate(BACKEND_1, remote)
    assert result.ok, result.failures()
    assert [c.name for c in result.checks] == [
        "service xray", "service ovpn-agent", "xray stays up", "ovpn-agent stays up", "xray listens on 443",
        "agent healthy",
    ]  # fmt: skip
    assert len(remote.ran("ps", "--all")) == 2  # before and after the settle time
    assert remote.ran("bash", "-c", "</dev/tcp/127.0.0.1/443")


def test_a_status_text_that_ages_while_settling_is_not_a_restart() -> None:
    later = ps(("xray", "running", "", "x1"), ("ovpn-agent", "running", "healthy", "a1"), up="Up 6 seconds")
    remote = (
        ScriptedRemote()
        .on("ps", "--all", reply=[VPN_UP, later])
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", "ovpn-agent", reply=HEALTHY_AGENT)
    )
    result = gate(BACKEND_1, remote)
    assert result.ok, result.failures()
    assert len(remote.ran("ps", "--all")) == 2  # passed in the first round


def test_a_service_that_keeps_restarting_fails_the_gate_at_its_deadline() -> None:
    runs = iter(range(1, 1000))

    def crash_looping(argv: tuple[str, ...]) -> Reply:
        return ps(("xray", "running", "", f"x{next(runs)}"), ("ovpn-agent", "running", "healthy", "a1"))

    remote = (
        ScriptedRemote()
        .on("ps", "--all", reply=crash_looping)
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", "ovpn-agent", reply=HEALTHY_AGENT)
    )
    result = gate(BACKEND_1, remote, timeout=20)
    assert not result.ok
    assert result.failures().startswith("xray stays up: restarted: ('running', '', 'x")
    assert failing_service(result, BACKEND_1) == "xray"
    # The deadline bounds it: every round settles 4 s and pauses 2 s.
    assert len(remote.ran("ps", "--all")) == 2 * 4


def test_a_service_that_restarts_once_while_settling_passes_when_it_stays_up() -> None:
    restarted = ps(("xray", "running", "", "x2"), ("ovpn-agent", "running", "healthy", "a1"))
    remote = (
        ScriptedRemote()
        .on("ps", "--all", reply=[VPN_UP, restarted])
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", "ovpn-agent", reply=HEALTHY_AGENT)
    )
    result = gate(BACKEND_1, remote)
    assert result.ok and len(remote.ran("ps", "--all")) == 4


def test_a_proxy_waits_for_a_backend_up_and_fails_closed_on_none() -> None:
    def proxy(metrics: str) -> ScriptedRemote:
        def answer(argv: tuple[str, ...]) -> Reply:
            return HEALTHY_AGENT if "/health" in argv[-1] else Reply(metrics)

        return (
            ScriptedRemote()
            .on("ps", "--all", reply=PROXY_UP)
            .on("bash", "-c", reply=Reply())
            .on("docker", "exec", "ovpn-agent", "python3", "-c", reply=answer)
        )

    said: list[str] = []
    assert gate(PROXY, proxy(ONE_UP), expect_backend_up=True, said=said).ok
    assert said == []  # no wait, nothing to say
    down = gate(PROXY, proxy(ALL_DOWN), expect_backend_up=True, timeout=20, said=said)
    assert not down.ok and down.failures() == "haproxy backend UP: no backend UP"
    # A line at most every 5 s of the wait, naming what is awaited: the rounds end at 4, 10 and 16 s (4 s of
    # settling, then a 2 s pause), and the wait ends at the 20 s deadline.
    assert said == [
        "waiting for haproxy: 0/2 backends UP (10/20 s)",
        "waiting for haproxy: 0/2 backends UP (16/20 s)",
    ]
    assert failing_service(down, PROXY) == "haproxy"
    # Without attached backends the pool is not waited for (foreign traffic fails closed by design).
    assert gate(PROXY, proxy(ALL_DOWN), expect_backend_up=False).ok


def test_a_service_never_running_is_reported_with_its_state_and_nothing_else_is_probed() -> None:
    remote = ScriptedRemote().on("ps", "--all", reply=ps(("xray", "exited", "", "x1")))
    said: list[str] = []
    result = gate(BACKEND_1, remote, timeout=6, said=said)
    assert not result.ok
    assert result.failures() == "service xray: exited; service ovpn-agent: missing"
    assert said == ["waiting for xray: exited, ovpn-agent: missing (6/6 s)"]
    assert not remote.ran("docker", "exec") and not remote.ran("bash")


def test_a_silent_agent_fails_the_gate_with_what_it_said() -> None:
    remote = (
        ScriptedRemote()
        .on("ps", "--all", reply=VPN_UP)
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", reply=Reply(stderr="connection refused", code=1))
    )
    result = gate(BACKEND_1, remote, timeout=4)
    assert result.failures() == "agent healthy: agent says None"


def test_failing_service_names_the_first_required_service_a_failed_check_names() -> None:
    result = GateResult(
        False, [GateCheck("service xray", True, "running"), GateCheck("start", False, "boom")]
    )
    assert failing_service(result, BACKEND_1) is None


def test_rollback_switches_back_to_the_previous_release_and_starts_it() -> None:
    remote = ScriptedRemote().on("ln", reply=Reply()).on("mv", reply=Reply()).on("up", reply=Reply())
    previous = LiveRelease(
        "20261201T000000Z-aaaaaaaa", "ab" * 32, "/opt/ovpn-releases/20261201T000000Z-aaaaaaaa"
    )
    message = rollback(host_for(BACKEND_1, remote), previous, "never", monitoring=False)
    assert message == "switched back to 20261201T000000Z-aaaaaaaa"
    assert remote.calls[:2] == [
        ("ln", "-sfn", previous.directory, "/opt/ovpn.next"),
        ("mv", "-T", "/opt/ovpn.next", "/opt/ovpn"),
    ]
    (up,) = remote.ran("up")
    assert "--pull=never" in up and "--force-recreate" in up


def test_rollback_with_no_previous_release_stops_the_services_and_removes_the_link() -> None:
    remote = ScriptedRemote().on("down", reply=Reply()).on("rm", reply=Reply())
    message = rollback(host_for(BACKEND_1, remote), None, "missing", monitoring=False)
    assert message == "there was no previous release: the services were stopped"
    assert remote.ran("compose") and remote.ran("down", "--remove-orphans")
    assert remote.calls[-1] == ("rm", "-f", "/opt/ovpn")


PREVIOUS = LiveRelease("20261201T000000Z-aaaaaaaa", "ab" * 32, "/opt/ovpn-releases/20261201T000000Z-aaaaaaaa")
RELEASE = "/opt/ovpn-releases/20261203T120000Z-bbbbbbbb"
POOL_LOG = (CAPTURED / "haproxy-3.0-log-pool-down-then-up.txt").read_text()
SCRAPES = "".join(f"Connect from 10.0.0.3:{40000 + i} to 172.18.0.4:8404 (metrics/HTTP)\n" for i in range(15))


def live_proxy(metrics: str) -> ScriptedRemote:
    """A proxy host that takes the switch and starts; its agent answers with `metrics` for HAProxy's."""

    def agent_answer(argv: tuple[str, ...]) -> Reply:
        return HEALTHY_AGENT if "/health" in argv[-1] else Reply(metrics)

    return (
        ScriptedRemote()
        .on("docker", "ps", "--filter", reply=Reply())  # no monitoring stack
        .on("ln", reply=Reply())
        .on("mv", reply=Reply())
        .on("up", reply=Reply())
        .on("ps", "--all", reply=PROXY_UP)
        .on("bash", "-c", reply=Reply())
        .on("docker", "exec", "ovpn-agent", "python3", "-c", reply=agent_answer)
        .on("--tail", "2000", "haproxy", reply=Reply(SCRAPES + POOL_LOG + SCRAPES))
        .on("logs", reply=Reply(SCRAPES))
        .on("sh", "-c", reply=Reply())  # prune
    )


def go(server: Server, remote: ScriptedRemote, backends: list[str]) -> DeployOutcome:
    clock = FakeClock()
    options = DeployOptions(gate_timeout=20)
    attempt = Attempt("deploy", "20261203T120000Z-bbbbbbbb", "cd" * 32, PREVIOUS, "")
    return go_live(host_for(server, remote), RELEASE, attempt, backends, options, lambda _: None, sleep=clock.sleep,
                   clock=clock)  # fmt: skip


def test_a_proxy_whose_every_backend_is_down_shows_haproxys_checks_and_the_backends_doctor() -> None:
    remote = live_proxy(ALL_DOWN)
    outcome = go(PROXY, remote, ["vpn-nl", "vpn-de"])
    assert outcome.result == "rolled-back"
    error = deploy_failed(outcome, PREVIOUS)
    first, label, *lines = error.message.splitlines()
    assert first == (
        "deploy of proxy-ru failed: health gate failed: haproxy backend UP: no backend UP; "
        "switched back to 20261201T000000Z-aaaaaaaa"
    )
    assert label == "HAProxy's checks of the pool:"
    assert lines[0].startswith("Server foreign_backends/vpn-nl is DOWN, reason: Layer4 connection problem")
    assert not any("metrics/HTTP" in line for line in lines)
    assert error.hint == (
        "the previous release is serving again; no backend of the pool answers HAProxy's checks: "
        "see `ovpn doctor vpn-nl`, `ovpn doctor vpn-de`, then deploy proxy-ru again"
    )
    assert not remote.ran("logs", "--tail", "15")


def test_a_proxy_deploy_with_one_backend_down_succeeds_with_a_warning_naming_its_fix() -> None:
    outcome = go(PROXY, live_proxy(ONE_UP), ["vpn-nl", "vpn-de"])
    assert (outcome.result, outcome.message) == ("ok", "20261203T120000Z-bbbbbbbb is live")
    assert outcome.warnings == [
        "backend vpn-de is DOWN in proxy-ru's pool: foreign traffic avoids it; "
        "fix it with `ovpn deploy vpn-de` (see `ovpn doctor vpn-de`)"
    ]
    assert go(PROXY, live_proxy(ONE_UP.replace('"DOWN"} 1', '"DOWN"} 0')), ["vpn-nl"]).warnings == []


def test_a_failed_start_is_labelled_start_failed_and_compose_s_output_shown_once() -> None:
    compose_said = "Error response from daemon: driver failed programming external connectivity"
    remote = live_proxy(ONE_UP)
    remote.rules.insert(
        0, ScriptedRemote().on("up", reply=[Reply(stderr=compose_said, code=1), Reply()]).rules[0]
    )
    outcome = go(PROXY, remote, ["vpn-nl"])
    error = deploy_failed(outcome, PREVIOUS)
    assert error.message == (
        f"deploy of proxy-ru failed: start failed: docker compose up failed on proxy-ru: {compose_said}; "
        "switched back to 20261201T000000Z-aaaaaaaa"
    )
    assert error.hint == "the previous release is serving again; fix the cause and deploy again"
    assert len(remote.ran("up")) == 2 and not remote.ran("ps", "--all")  # started, rolled back; no gate


def test_an_xray_version_without_an_image_stops_validation_with_docker_s_error_and_a_version_hint() -> None:
    docker_said = (
        "Unable to find image 'ghcr.io/xtls/xray-core:99.9.9' locally\n"
        "docker: Error response from daemon: manifest unknown.\nSee 'docker run --help'.\n"
    )
    remote = (
        ScriptedRemote()
        .on("config", "--quiet", reply=Reply())
        .on("docker", "run", reply=Reply(stderr=docker_said, code=125))
    )
    images = {"xray": "ghcr.io/xtls/xray-core:99.9.9"}
    with pytest.raises(OvpnError) as raised:
        validate_on_host(host_for(BACKEND_1, remote), RELEASE, images, "missing", lambda _: None)
    assert raised.value.message == (
        "the Xray image ghcr.io/xtls/xray-core:99.9.9 cannot be run on vpn-nl: "
        "Error response from daemon: manifest unknown."
    )
    assert raised.value.hint == (
        "nothing was switched; check the Xray version (26.7.28 is not a published image?) "
        "and set one that is: ovpn server set vpn-nl --xray-version V"
    )
