"""`deploy --all`: vpn servers in one wave, then the proxies, each wave in parallel; a failure stops nobody."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from ovpn.core.model import Role, Server
from ovpn.errors import OvpnError
from ovpn.ops.deploy import DeployOutcome
from ovpn.ops.fleet_deploy import FleetDeploy, deploy_waves, run_waves

BASE = Server(
    name="base", role="vpn", host="203.0.113.10", domain="vpn.example.net", ssh_user="root", ssh_port=22,
    xray_version="26.7.28", reality_private_key="k", reality_public_key="p", reality_short_id="ab",
    reality_server_name="www.microsoft.com", reality_target="www.microsoft.com:443",
)  # fmt: skip
# Long enough for a wrongly started proxy to show up; it is only waited out where nothing may happen.
NOTHING_HAPPENS_SECONDS = 0.3


def server(name: str, role: Role) -> Server:
    return replace(BASE, name=name, role=role)


def outcome(name: str) -> DeployOutcome:
    return DeployOutcome(name, "ok", f"rev-{name}", "sha", "deployed")


def test_vpn_servers_come_in_the_first_wave_and_proxies_in_the_second_in_fleet_order() -> None:
    fleet = [
        server("proxy-a", "proxy"),
        server("vpn-b", "vpn"),
        server("proxy-c", "proxy"),
        server("vpn-d", "vpn"),
    ]
    assert deploy_waves(fleet) == [["vpn-b", "vpn-d"], ["proxy-a", "proxy-c"]]
    assert deploy_waves([server("vpn-1", "vpn")]) == [["vpn-1"], []]


def test_a_wave_runs_in_parallel_and_no_proxy_starts_before_every_vpn_server_is_done() -> None:
    started: list[str] = []
    finished: list[str] = []
    lock = threading.Lock()
    both_vpns_running = threading.Barrier(2, timeout=10)
    proxy_started = threading.Event()

    def deploy_one(name: str) -> DeployOutcome:
        with lock:
            started.append(name)
        if name.startswith("proxy"):
            proxy_started.set()
            with lock:
                assert sorted(finished) == ["vpn-a", "vpn-b"], f"{name} started while {finished} were done"
        else:
            both_vpns_running.wait()  # serial deploys would never meet here
            assert not proxy_started.wait(NOTHING_HAPPENS_SECONDS), "a proxy started during the vpn wave"
        with lock:
            finished.append(name)
        return outcome(name)

    results = run_waves([["vpn-a", "vpn-b"], ["proxy-c"]], deploy_one, jobs=4)
    assert list(results) == ["vpn-a", "vpn-b", "proxy-c"]
    assert all(isinstance(r, DeployOutcome) for r in results.values()), results
    assert sorted(started[:2]) == ["vpn-a", "vpn-b"] and started[2] == "proxy-c"


def test_a_failed_server_is_reported_with_its_error_and_the_rest_still_deploy() -> None:
    def deploy_one(name: str) -> DeployOutcome:
        if name == "vpn-bad":
            raise OvpnError("vpn-bad is unreachable", "check SSH")
        return outcome(name)

    results = run_waves([["vpn-bad", "vpn-ok"], ["proxy"]], deploy_one, jobs=1)
    report = FleetDeploy(results, 1.0)
    assert list(report.results) == ["vpn-bad", "vpn-ok", "proxy"]
    assert list(report.failed) == ["vpn-bad"] and report.failed["vpn-bad"].hint == "check SSH"
    assert report.results["proxy"] == outcome("proxy")


def test_anything_but_an_ovpn_error_is_not_swallowed() -> None:
    def deploy_one(name: str) -> DeployOutcome:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        run_waves([["vpn"], []], deploy_one, jobs=2)
