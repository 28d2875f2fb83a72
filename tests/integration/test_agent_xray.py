"""ovpn-agent against a real Xray on loopback: a VLESS + REALITY server with its API, a real client Xray, real
traffic through the client's SOCKS ports to a loopback HTTP server.

Everything stays on 127.0.0.1; every wait polls a condition until a deadline.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import tool_path
from tests.support.agent_exec import LocalAgentExec
from tests.support.cli import run_cli
from tests.support.exposition import sample
from tests.support.procs import wait_until
from tests.support.waiting import LOOPBACK, free_port
from tests.support.xray_loopback import LabUser, XrayLoopback, xray_loopback

from ovpn.agent.http_api import AgentServer, serve
from ovpn.agent.service import Agent
from ovpn.agent.xray_api import XrayApi
from ovpn.core.model import AGENT_MARKER_EMAIL, MAX_QUOTA_BYTES

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
TAG = "vless-reality"


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = now

    def __call__(self) -> float:
        return time.time() if self.now is None else self.now


class Harness:
    """The agent in this process (its clock and faults injectable), served over HTTP on loopback."""

    def __init__(self, lab: XrayLoopback, db: Path, clock: Clock | None = None) -> None:
        self.lab = lab
        self.clock = clock or Clock()
        self.fail_next_write: str | None = None
        self.agent = Agent((LOOPBACK, lab.api_port), db, TOKEN, poll_interval=3600, clock=self.clock,
                           api_timeout=3, fault=self._fault)  # fmt: skip
        self.server: AgentServer = serve(self.agent, (LOOPBACK, free_port()))
        self.base = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.xray = XrayApi(lab.api_address, timeout=3)

    def _fault(self, point: str) -> None:
        if self.fail_next_write == point:
            self.fail_next_write = None
            raise OSError(f"injected failed write at {point}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.agent.stop()
        self.xray.close()

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def sync(self, users: list[dict[str, Any]]) -> dict[str, Any]:
        status, doc = self.request("POST", "/users/sync", {"users": users})
        assert status == 200, doc
        assert not doc["enforcement"]["errors"], doc
        return dict(doc)

    def totals(self) -> dict[str, tuple[int, int]]:
        return {
            r["email"]: (r["uplink_bytes"], r["downlink_bytes"])
            for r in self.request("GET", "/stats/total")[1]
        }

    def runtime_emails(self) -> set[str]:
        return set(self.xray.inbound_users(TAG)) - {AGENT_MARKER_EMAIL}

    def xray_user_bytes(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (email, _), value in self.xray.user_counters().items():
            totals[email] = totals.get(email, 0) + value
        return totals


def policy(user: LabUser, **fields: Any) -> dict[str, Any]:
    return {"email": user.email, "uuid": user.uuid, "username": user.name, "enabled": True, **fields}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XrayLoopback]:
    users = [LabUser(name, str(uuid.uuid4())) for name in ("alice", "bob", "carol")]
    # carol is not in the server's config file: she only ever gets in through the agent.
    with xray_loopback(tool_path("xray"), tmp_path_factory.mktemp("xray"), users, ["alice", "bob"]) as lab:
        yield lab


@pytest.fixture
def harness(lab: XrayLoopback, tmp_path: Path) -> Iterator[Harness]:
    lab.restart_server()  # every test starts from Xray's own config and zeroed counters
    h = Harness(lab, tmp_path / "agent")
    try:
        yield h
    finally:
        h.close()


def wait_counted(h: Harness, email: str, at_least: int) -> None:
    """Xray counts a Vision connection when it closes: wait until its counter has caught up."""
    wait_until(
        lambda: h.xray_user_bytes().get(email, 0) >= at_least, timeout=10, what=f"Xray to count {email}"
    )


def test_health_reports_the_real_xray_api_and_degrades_without_it(
    harness: Harness, lab: XrayLoopback
) -> None:
    status, health = harness.request("GET", "/health", token=None)
    assert status == 200 and health["status"] == "ok" and health["xray_api"]["up"] is True
    assert sample(harness.request("GET", "/metrics", token=None)[1], "ovpn_agent_xray_api_up") == 1
    lab.stop_server()
    try:
        status, health = harness.request("GET", "/health", token=None)
        assert status == 200 and health["status"] == "degraded" and health["xray_api"]["up"] is False
        assert sample(harness.request("GET", "/metrics", token=None)[1], "ovpn_agent_xray_api_up") == 0
        status, result = harness.request("POST", "/collect")
        assert status == 200 and result["ok"] is False and "Xray API" in result["error"]
    finally:
        lab.start_server()


def test_real_traffic_raises_exactly_that_users_counters(harness: Harness, lab: XrayLoopback) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    harness.sync([policy(alice), policy(bob)])
    harness.request("POST", "/collect")
    before = harness.totals()
    assert lab.download("alice", 300_000) == 300_000
    wait_counted(harness, alice.email, 300_000)
    status, result = harness.request("POST", "/collect")
    assert status == 200 and result["ok"], result
    after = harness.totals()
    up, down = after[alice.email]
    old_up, old_down = before.get(alice.email, (0, 0))
    # The body plus HTTP headers and the request: the user's own bytes, nobody else's.
    assert 300_000 <= down - old_down < 301_000
    assert 0 < up - old_up < 1_000
    assert after.get(bob.email, (0, 0)) == before.get(bob.email, (0, 0))
    assert set(after) <= {alice.email, bob.email}
    # The agent's totals are exactly Xray's counters (one process, nothing lost, nothing twice).
    xray = harness.xray.user_counters()
    assert after[alice.email] == (xray[(alice.email, "uplink")], xray[(alice.email, "downlink")])
    metrics = harness.request("GET", "/metrics", token=None)[1]
    assert (
        sample(metrics, f'ovpn_agent_user_traffic_bytes_total{{email="{alice.email}",direction="downlink"}}')
        == down
    )
    assert sample(metrics, "ovpn_agent_collector_last_success_timestamp_seconds") is not None
    assert sample(metrics, 'ovpn_agent_collector_runs_total{result="success"}') == 2


STEP = st.one_of(
    st.tuples(st.just("traffic"), st.sampled_from(["alice", "bob"]), st.integers(1, 400_000)),
    st.tuples(st.just("collect")),
    st.tuples(st.just("fail"), st.sampled_from(["usage-written", "positions-written"])),
    st.tuples(st.just("restart")),
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=7))
def test_totals_equal_the_traffic_across_restarts_and_failed_writes(
    lab: XrayLoopback, tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    """Random traffic, Xray restarts and failed writes: the agent's totals are exactly what Xray counted up to
    the last successful read of each Xray process (bytes Xray itself forgot in a restart before any read are
    the only ones it cannot have)."""
    lab.restart_server()
    h = Harness(lab, tmp_path_factory.mktemp("agent"))
    try:
        alice, bob = lab.user("alice"), lab.user("bob")
        h.sync([policy(alice), policy(bob)])
        secured: dict[str, int] = {}  # per email: bytes of finished Xray processes, as last read successfully
        read: dict[str, int] = {}  # per email: the current process's counters at its last successful read

        def collect_ok() -> None:
            result = h.agent.cycle()[0]
            assert result.ok, result.error
            read.clear()
            read.update(h.xray_user_bytes())

        for step in [*steps, ("collect",)]:
            if step[0] == "traffic":
                before = h.xray_user_bytes().get(lab.user(step[1]).email, 0)
                assert lab.download(step[1], step[2]) == step[2]
                wait_counted(h, lab.user(step[1]).email, before + step[2])
            elif step[0] == "collect":
                collect_ok()
            elif step[0] == "fail":
                h.fail_next_write = step[1]
                result = h.agent.cycle()[0]
                assert not result.ok and "injected" in str(result.error)
            else:
                for email, value in read.items():
                    secured[email] = secured.get(email, 0) + value
                read.clear()
                lab.restart_server()
        expected = {e: secured.get(e, 0) + read.get(e, 0) for e in set(secured) | set(read)}
        counted = {e: up + down for e, (up, down) in h.totals().items()}
        assert counted == {e: v for e, v in expected.items() if v}
    finally:
        h.close()


def test_a_user_over_quota_is_cut_off_and_comes_back_after_a_reset(
    harness: Harness, lab: XrayLoopback
) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    harness.sync([policy(alice, quota_bytes=200_000), policy(bob)])
    assert lab.download("alice", 150_000) == 150_000
    wait_counted(harness, alice.email, 150_000)
    _, enforced = harness.agent.cycle()
    assert enforced is not None and enforced.blocked == []
    assert lab.download("alice", 100_000) == 100_000
    wait_counted(harness, alice.email, 250_000)
    _, enforced = harness.agent.cycle()
    assert enforced is not None and enforced.blocked == [alice.email] and enforced.removed == [alice.email]
    assert lab.download_fails("alice"), "a blocked user's new connection must fail"
    assert lab.download("bob", 1000) == 1000, "nobody else is affected"
    status, quota = harness.request("GET", f"/quota/status?email={alice.email}", token=None)
    assert status == 200 and quota["users"][0]["blocked_by_quota"] is True
    assert quota["users"][0]["quota_usage_ratio"] >= 1
    # The runtime endpoint refuses to let a blocked user back in.
    status, refused = harness.request("POST", "/runtime/user/add", {"email": alice.email})
    assert status == 409 and refused["reason"] == "quota"
    # Another cycle keeps her out.
    harness.agent.cycle()
    assert alice.email not in harness.runtime_emails()
    status, reset = harness.request("POST", "/quota/reset", {"email": alice.email})
    assert status == 200 and reset["runtime_readd"] is True
    assert lab.download("alice", 1000) == 1000
    harness.agent.cycle()
    assert alice.email in harness.runtime_emails(), "usage after the reset is far below the quota"
    # Over again, then a raised quota lets her back in.
    assert lab.download("alice", 250_000) == 250_000
    wait_counted(harness, alice.email, 251_000)
    harness.agent.cycle()
    assert lab.download_fails("alice")
    status, synced = harness.request(
        "POST", "/quota/sync", {"users": [{"email": alice.email, "quota_bytes": 10**9}]}
    )
    assert status == 200 and synced["enforcement"]["unblocked"] == [alice.email]
    assert lab.download("alice", 1000) == 1000


def test_an_expired_user_is_removed_at_midnight_utc_of_the_expiry_day(
    lab: XrayLoopback, tmp_path: Path
) -> None:
    lab.restart_server()
    last_second = datetime(2030, 5, 17, 23, 59, 59, tzinfo=UTC).timestamp()
    clock = Clock(last_second)
    h = Harness(lab, tmp_path / "agent", clock)
    try:
        alice, bob = lab.user("alice"), lab.user("bob")
        h.sync([policy(alice, expiry="2030-05-17"), policy(bob)])
        h.agent.cycle()
        assert alice.email in h.runtime_emails()
        assert lab.download("alice", 1000) == 1000, "active through 23:59:59 UTC of the expiry date"
        clock.now = last_second + 1  # 2030-05-18T00:00:00Z
        _, enforced = h.agent.cycle()
        assert enforced is not None and enforced.removed == [alice.email]
        assert lab.download_fails("alice")
        assert lab.download("bob", 1000) == 1000
        status, users = h.request("GET", f"/users/status?email={alice.email}", token=None)
        assert status == 200 and users["users"][0]["expired"] is True and users["expired_users"] == 1
        metrics = h.request("GET", "/metrics", token=None)[1]
        assert sample(metrics, f'ovpn_agent_user_expired{{email="{alice.email}"}}') == 1
        status, refused = h.request("POST", "/runtime/user/add", {"email": alice.email})
        assert status == 409 and refused["reason"] == "expired"
        # A later date (the operator's expiry-set) brings her back at the next sync.
        synced = h.sync([policy(alice, expiry="2030-06-30"), policy(bob)])
        assert synced["enforcement"]["runtime_added"] == [alice.email]
        assert lab.download("alice", 1000) == 1000
    finally:
        h.close()


def test_a_live_add_leaves_another_users_long_download_unbroken(harness: Harness, lab: XrayLoopback) -> None:
    alice, bob, carol = lab.user("alice"), lab.user("bob"), lab.user("carol")
    harness.sync([policy(alice), policy(bob)])
    assert lab.download_fails("carol"), "carol is not in Xray's config"
    size = 4 * 1024 * 1024  # 64 chunks of 64 KiB, 40 ms apart: about 2.5 s
    outcome: dict[str, object] = {}
    started = threading.Event()

    def long_download() -> None:
        try:
            outcome["bytes"] = lab.download_slow("bob", size, pause_ms=40, started=started)
        except Exception as e:
            outcome["error"] = e

    downloader = threading.Thread(target=long_download)
    downloader.start()
    assert started.wait(timeout=10), "bob's download did not start"
    status, doc = harness.request(
        "POST", "/users/sync", {"users": [policy(alice), policy(bob), policy(carol)]}
    )
    assert status == 200 and doc["enforcement"]["runtime_added"] == [carol.email], doc
    assert lab.download("carol", 50_000) == 50_000
    assert downloader.is_alive(), "the add and carol's download finished while bob's download was running"
    downloader.join(timeout=30)
    assert outcome == {"bytes": size}
    # The runtime endpoint for a single user: remove and add again, idempotently.
    assert harness.request("POST", "/runtime/user/remove", {"email": carol.email})[1]["result"] == "removed"
    assert harness.request("POST", "/runtime/user/remove", {"email": carol.email})[1]["absent"] is True
    assert lab.download_fails("carol")
    assert (
        harness.request("POST", "/runtime/user/add", {"email": carol.email, "uuid": carol.uuid})[1]["result"]
        == "added"
    )
    assert lab.download("carol", 1000) == 1000


def test_after_an_xray_restart_the_runtime_is_reconciled(harness: Harness, lab: XrayLoopback) -> None:
    alice, bob, carol = lab.user("alice"), lab.user("bob"), lab.user("carol")
    harness.sync([policy(alice, enabled=False), policy(bob), policy(carol)])
    assert harness.runtime_emails() == {bob.email, carol.email}
    assert harness.agent.cycle()[0].ok
    lab.restart_server()  # back to the config file: alice in, carol out
    assert harness.runtime_emails() == {alice.email, bob.email}
    result, enforced = harness.agent.cycle()
    assert result.ok and result.xray_restarted
    assert enforced is not None and enforced.reconciled
    assert harness.runtime_emails() == {bob.email, carol.email}
    assert lab.download_fails("alice") and lab.download("carol", 1000) == 1000


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(harness: Harness, lab: XrayLoopback) -> None:
    alice, bob = lab.user("alice"), lab.user("bob")
    harness.sync([policy(alice), policy(bob, quota_bytes=5 * 10**9)])
    snapshot = (harness.request("GET", "/quota/policies")[1], harness.runtime_emails())
    good = {"users": [policy(alice, enabled=False)]}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/users/sync", {"raw": b"{not json"}, 400, "malformed JSON"),
        ("POST", "/users/sync", {"raw": b"[1, 2]"}, 400, "JSON object"),
        ("POST", "/users/sync", {"body": {"users": [{"email": alice.email}]}}, 400, "missing field 'uuid'"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, uuid="nope")]}}, 400, "uuid"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, expiry="2030-02-30")]}}, 400, "expiry"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, quota_bytes=-1)]}}, 400, "quota_bytes"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice), policy(alice)]}}, 400, "duplicate"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, quota_bytes=10**30)]}}, 400, "at most"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, quota_bytes=MAX_QUOTA_BYTES + 1)]}}, 400,
         "at most"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice)], "default_quota_bytes": 10**30}}, 400,
         "default_quota_bytes"),
        ("POST", "/users/sync", {"raw": b"[" * 100_000 + b"]" * 100_000}, 400, "nested too deeply"),
        ("POST", "/users/sync", {"raw": b'{"users": [], "default_quota_bytes": ' + b"9" * 5000 + b"}"}, 400,
         "digits"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, email="alice\ud800@global")]}}, 400, "email"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, email="alice\x00@global")]}}, 400, "email"),
        ("POST", "/users/sync", {"body": {"users": [policy(alice, username="\ud800")]}}, 400, "username"),
        ("POST", "/quota/sync", {"body": {"users": [{"email": alice.email, "quota_bytes": 2**63}]}}, 400,
         "at most"),
        ("POST", "/quota/sync", {"body": {"users": [], "default_quota_bytes": 10**30}}, 400,
         "default_quota_bytes"),
        ("POST", "/quota/sync", {"raw": b'{"users": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"}, 400,
         "nested too deeply"),
        ("POST", "/users/sync", {"body": {"users": [{**policy(alice), "email": "proxy-service@cluster"}]}}, 400,
         "reserved"),
        ("POST", "/users/sync", {"body": good, "token": None}, 401, "missing bearer token"),
        ("POST", "/users/sync", {"body": good, "token": "wrong"}, 401, "wrong token"),
        ("POST", "/quota/reset", {"body": {"email": "nobody@global"}}, 404, "unknown user"),
        ("POST", "/quota/sync", {"body": {"users": [{"email": "nobody@global", "quota_bytes": 1}]}}, 404,
         "unknown users"),
        ("POST", "/runtime/user/add", {"body": {"email": "nobody@global", "uuid": str(uuid.uuid4())}}, 404,
         "unknown user"),
        ("POST", "/runtime/user/add", {"body": {"email": alice.email, "uuid": str(uuid.uuid4())}}, 409, "uuid"),
        ("POST", "/runtime/user/remove", {"body": {"email": "proxy-service@cluster"}}, 404, "unknown user"),
        ("POST", "/runtime/user/remove", {"body": {"email": alice.email}, "token": None}, 401, "token"),
        ("POST", "/runtime/user/remove", {"body": {"email": alice.email}, "token": "x" * 30}, 401, "wrong token"),
        ("POST", "/quota/reset", {"body": {}}, 400, "missing field 'email'"),
        ("GET", "/quota/policies", {"token": None}, 401, "token"),
        ("GET", "/users/sync", {}, 405, "takes POST"),
        ("GET", "/stats/daily?date=yesterday", {}, 400, "date"),
        ("GET", "/users/status?email=nobody@global", {}, 404, "unknown user"),
        ("GET", "/nope", {}, 404, "no such endpoint"),
    ]  # fmt: skip
    for method, path, options, status, fragment in cases:
        got, doc = harness.request(method, path, options.get("body"), token=options.get("token", TOKEN),
                                   raw=options.get("raw"))  # fmt: skip
        assert got == status, (path, options, doc)
        assert fragment in doc["error"], (path, doc)
        assert (harness.request("GET", "/quota/policies")[1], harness.runtime_emails()) == snapshot, (
            path,
            options,
        )


def test_ovpn_stats_for_a_user_whose_email_has_a_plus(
    harness: Harness,
    lab: XrayLoopback,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ovpn stats --user` end to end: the CLI, the agent call as it runs in the agent's container (SSH and
    Docker stood in for), the agent and Xray. A `+` in a query string reads as a space unless it is encoded."""
    carol = lab.user("carol")
    email = "carol+vpn@global"
    harness.sync([policy(carol, email=email), policy(lab.user("bob"))])
    assert lab.download("carol", 50_000) == 50_000
    wait_counted(harness, email, 50_000)
    assert harness.request("POST", "/collect")[1]["ok"]
    monkeypatch.setenv("OVPN_DATA_DIR", str(tmp_path / "state"))
    for command in ("server add --name vpn-nl --role vpn --host 203.0.113.10",
                    f"user add --username carol --email {email}"):  # fmt: skip
        code, _, err = run_cli(capsys, *command.split())
        assert code == 0, err
    remote = LocalAgentExec(harness.server.server_address[1], TOKEN)
    monkeypatch.setattr("ovpn.ops.users_live.connect", lambda app, server: remote)
    code, out, err = run_cli(capsys, "stats", "--server", "vpn-nl", "--user", "carol", "--json")
    assert code == 0, err
    rows = json.loads(out)["users"]
    assert [r["email"] for r in rows] == [email], rows
    assert rows[0]["downlink_bytes"] >= 50_000 and rows[0]["in_runtime"] is True
    assert ("GET", "/users/status?email=carol%2Bvpn%40global") in remote.calls


def test_the_ovpn_agent_command_collects_on_its_own_schedule(lab: XrayLoopback, tmp_path: Path) -> None:
    """The real command line: `ovpn-agent --listen --xray-api --db-path --poll-interval`, token from a file."""
    import os
    import subprocess
    import sys

    lab.restart_server()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovpn.agent.main", "--listen", f"{LOOPBACK}:{port}", "--xray-api", lab.api_address,
         "--db-path", str(tmp_path / "db"), "--poll-interval", "0.5"],
        env={**os.environ, "OVPN_AGENT_TOKEN_FILE": str(token_file)}, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://{LOOPBACK}:{port}"

    def get(path: str) -> Any:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    try:
        health = wait_until(lambda: get("/health"), timeout=15, what="the agent to answer")
        assert health["status"] == "ok" and health["xray_api"]["up"] is True
        alice = lab.user("alice")
        body = json.dumps({"users": [policy(alice)]}).encode()
        req = urllib.request.Request(base + "/users/sync", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as response:
            assert response.status == 200
        assert lab.download("alice", 70_000) == 70_000
        totals = wait_until(
            lambda: [r for r in get("/stats/total") or [] if r["email"] == alice.email and r["downlink_bytes"] >= 70_000],
            timeout=15, what="the scheduled collector to count alice's download",
        )  # fmt: skip
        assert totals[0]["uplink_bytes"] > 0
        assert get("/health")["last_collect_at"] is not None
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""


def test_the_bundles_wheels_install_without_an_index_and_the_agent_runs(
    lab: XrayLoopback, tmp_path: Path, agent_wheels: Path
) -> None:
    """What the agent's Dockerfile does on a host, in a bare virtualenv: `pip install --no-index` from the
    bundle's agent/ directory only (ovpn's wheel + the gRPC wheels for this platform), then the agent serves
    a healthy /health against a real Xray."""
    import os
    import platform as host_platform
    import subprocess
    import sys

    from ovpn.ops.agent_deps import AgentPlatform, dependency_wheels
    from ovpn.ops.agent_wheel import agent_wheel
    from ovpn.render.compose import render_agent_dockerfile

    if host_platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("no manylinux wheels for this machine")
    data = Path(os.environ.get("OVPN_TEST_WHEEL_CACHE", tmp_path / "data"))
    context = tmp_path / "agent"
    (context / "wheels").mkdir(parents=True)
    name, wheel = agent_wheel(data)
    (context / name).write_bytes(wheel)
    deps = dependency_wheels(
        data, AgentPlatform(host_platform.machine(), f"{sys.version_info[0]}.{sys.version_info[1]}")
    )
    for dep_name, content in deps:
        (context / "wheels" / dep_name).write_bytes(content)
    dockerfile = render_agent_dockerfile(name, [n for n, _ in deps])
    assert "--no-index" in dockerfile and "COPY wheels/" in dockerfile
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    flat = tmp_path / "flat"  # the image's /tmp/ovpn-agent: the wheel and wheels/ copied into one directory
    flat.mkdir()
    for path in [context / name, *(context / "wheels").iterdir()]:
        (flat / path.name).write_bytes(path.read_bytes())
    subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--no-index", "--find-links", str(flat),
                    str(flat / name)], check=True, timeout=300)  # fmt: skip
    lab.restart_server()
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin/ovpn-agent"), "--listen", f"{LOOPBACK}:{port}", "--xray-api", lab.api_address,
         "--db-path", str(tmp_path / "db")],
        env={"OVPN_AGENT_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}, cwd=tmp_path, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def health() -> Any:
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/health", timeout=5) as response:
                    return json.loads(response.read())
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                return None

        assert wait_until(health, timeout=20, what="the installed agent")["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # The same wheels run the Telegram bot: every import resolves offline, and without a configuration it waits
    # in standby, saying why on /health.
    bot_port = free_port()
    bot = subprocess.Popen([str(venv / "bin/ovpn-telegram-bot")], cwd=tmp_path, stderr=subprocess.PIPE,
                           env={"PATH": "/usr/bin:/bin", "OVPN_TELEGRAM_LISTEN": f"{LOOPBACK}:{bot_port}"})  # fmt: skip
    try:

        def standby() -> Any:
            try:
                urllib.request.urlopen(f"http://{LOOPBACK}:{bot_port}/health", timeout=5)
            except urllib.error.HTTPError as e:
                return json.loads(e.read()) if e.code == 503 else None
            except OSError:
                assert bot.poll() is None, bot.stderr.read() if bot.stderr else b""
            return None

        reported = wait_until(standby, timeout=30, what="the installed bot's standby /health")
        assert reported == {"status": "misconfigured", "reason": "OVPN_TELEGRAM_TOKEN_FILE is not set"}
    finally:
        bot.terminate()
        assert bot.wait(timeout=15) == 0
