"""The agent's accounting and enforcement logic, many cases fast: Xray's API is played by `SimulatedXray`, a
model of the two behaviours the agent depends on (counters that live in the process; runtime users that a
restart forgets). The same properties run against a real Xray in tests/integration/test_agent_xray.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.exposition import sample

from ovpn.agent.collector import Collector
from ovpn.agent.enforce import Enforcer
from ovpn.agent.metrics import Registry
from ovpn.agent.store import CycleOutcome, CycleWrite, Policy, Store, window_start_day
from ovpn.agent.xray_api import RuntimeUser, XrayApiError
from ovpn.core.model import AGENT_MARKER_EMAIL
from ovpn.render.monitoring.alerts import agent_group, certificate_group


class SimulatedXray:
    def __init__(self, users: dict[str, str]) -> None:
        self.config_users = dict(users)
        self.counters: dict[str, int] = {}
        self.users: dict[str, RuntimeUser] = {}
        self.down = False
        self.restart_during_read = False
        self.restart()

    def restart(self) -> None:
        self.counters = {}
        self.users = {e: RuntimeUser(e, u, "xtls-rprx-vision") for e, u in self.config_users.items()}

    def traffic(self, email: str, up: int, down: int) -> None:
        for direction, amount in (("uplink", up), ("downlink", down)):
            name = f"user>>>{email}>>>traffic>>>{direction}"
            self.counters[name] = self.counters.get(name, 0) + amount

    def _check(self) -> None:
        if self.down:
            raise XrayApiError("call", "UNAVAILABLE", "connection refused", unreachable=True)

    def query_stats(self, pattern: str = "", *, reset: bool = False) -> dict[str, int]:
        self._check()
        values = {n: v for n, v in self.counters.items() if pattern in n}
        if self.restart_during_read:
            self.restart_during_read = False
            self.restart()
        return values

    def inbound_user(self, tag: str, email: str) -> RuntimeUser | None:
        self._check()
        return self.users.get(email.lower())

    def inbound_users(self, tag: str) -> dict[str, RuntimeUser]:
        self._check()
        return dict(self.users)

    def add_vless_user(self, tag: str, email: str, uuid: str, **_: object) -> Literal["added", "exists"]:
        self._check()
        if email.lower() in self.users:
            return "exists"
        self.users[email.lower()] = RuntimeUser(email, uuid, "xtls-rprx-vision")
        return "added"

    def remove_user(self, tag: str, email: str) -> Literal["removed", "absent"]:
        self._check()
        return "removed" if self.users.pop(email.lower(), None) else "absent"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


UUIDS = {f"u{i}@global": f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)}
T0 = datetime(2030, 1, 10, 12, tzinfo=UTC).timestamp()


class Rig:
    def __init__(self, directory: Path, fault_at: list[str] | None = None) -> None:
        self.xray = SimulatedXray(UUIDS)
        self.clock = Clock(T0)
        self.store = Store(directory)
        self.faults = fault_at if fault_at is not None else []
        lock = threading.RLock()
        metrics = Registry()
        self.collector = Collector(self.store, self.xray, inbound_tag="vless-reality", lock=lock,  # type: ignore[arg-type]
                                   metrics=metrics, clock=self.clock, fault=self._fault)  # fmt: skip
        self.enforcer = Enforcer(self.store, self.xray, inbound_tag="vless-reality", lock=lock,  # type: ignore[arg-type]
                                 metrics=metrics, clock=self.clock)  # fmt: skip

    def _fault(self, point: str) -> None:
        if self.faults and self.faults[0] == point:
            self.faults.pop(0)
            raise OSError(f"injected at {point}")

    def total(self) -> dict[str, int]:
        return {e: u + d for e, (u, d) in self.store.totals().items()}

    def sync(self, **quota: int | None) -> None:
        policies = [
            Policy(e, e.split("@")[0], u, True, None, quota.get(e.split("@")[0])) for e, u in UUIDS.items()
        ]
        self.store.replace_policies(policies, None, self.clock())


STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("traffic"), st.sampled_from(sorted(UUIDS)), st.integers(0, 10**7), st.integers(0, 10**9)
        ),
        st.tuples(st.just("collect")),
        st.tuples(st.just("fail"), st.sampled_from(["usage-written", "positions-written"])),
        st.tuples(st.just("restart")),
        st.tuples(st.just("restart-mid-read")),
        st.tuples(st.just("api-down")),
        st.tuples(st.just("hour")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_totals_equal_what_xray_counted_whatever_happens(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    """Never twice, never lost: the totals are exactly the bytes Xray counted up to the last successful read of
    each process, including restarts where the new process counted MORE than the old position (invisible as a
    counter drop) and restarts in the middle of a read."""
    rig = Rig(tmp_path_factory.mktemp("agent"))
    secured: dict[str, int] = {}
    read: dict[str, int] = {}

    def xray_totals() -> dict[str, int]:
        totals: dict[str, int] = {}
        for name, value in rig.xray.counters.items():
            email = name.split(">>>")[1]
            totals[email] = totals.get(email, 0) + value
        return totals

    for step in [*steps, ("collect",)]:
        kind = step[0]
        if kind == "traffic":
            rig.xray.traffic(step[1], step[2], step[3])
        elif kind == "collect":
            result = rig.collector.collect()
            if result.ok:
                read = xray_totals()
            else:
                assert rig.collector.collect().ok  # a retry after a restart mid-read succeeds
                read = xray_totals()
        elif kind == "fail":
            rig.faults[:] = [step[1]]
            assert not rig.collector.collect().ok
        elif kind in ("restart", "restart-mid-read"):
            if kind == "restart-mid-read":
                rig.xray.restart_during_read = True
                result = rig.collector.collect()
                assert not result.ok or result.error is None
                if result.ok:
                    read = {}
            for email, value in read.items():
                secured[email] = secured.get(email, 0) + value
            read = {}
            if kind == "restart":
                rig.xray.restart()
        elif kind == "api-down":
            rig.xray.down = True
            assert rig.collector.collect().api_failed
            rig.xray.down = False
        else:
            rig.clock.now += 3600
    expected = {e: secured.get(e, 0) + read.get(e, 0) for e in set(secured) | set(read)}
    assert rig.total() == {e: v for e, v in expected.items() if v}
    # Hourly and daily rows add up to the totals.
    hourly = {
        str(e): int(b)
        for e, b in rig.store.query("SELECT email, SUM(up + down) FROM traffic_hourly GROUP BY email")
    }
    daily = {
        str(e): int(b)
        for e, b in rig.store.query("SELECT email, SUM(up + down) FROM traffic_daily GROUP BY email")
    }
    assert hourly == daily == rig.total()


def test_a_failed_write_keeps_nothing_of_the_cycle_and_the_next_one_counts_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ["positions-written"])
    rig.xray.traffic("u1@global", 10, 1000)
    result = rig.collector.collect()
    assert not result.ok and "injected" in str(result.error)
    assert rig.total() == {} and rig.store.query("SELECT COUNT(*) FROM counter_state")[0][0] == 0
    assert rig.collector.collect().ok
    assert rig.total() == {"u1@global": 1010}
    assert rig.collector.collect().ok
    assert rig.total() == {"u1@global": 1010}


def test_a_restart_that_counted_more_than_the_old_position_is_still_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.xray.traffic("u1@global", 0, 1000)
    assert rig.collector.collect().ok
    rig.xray.restart()
    rig.xray.traffic("u1@global", 0, 5000)  # higher than the old position: no visible drop
    result = rig.collector.collect()
    assert result.ok and result.xray_restarted
    assert rig.total() == {"u1@global": 6000}


def test_concurrent_collections_never_overlap(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    inside = []
    original = rig.store.write_cycle

    def slow_write(cycle: CycleWrite, fault: Callable[[str], None] | None = None) -> CycleOutcome:
        inside.append(1)
        assert len(inside) == 1, "two collections wrote at once"
        threading.Event().wait(0.02)
        inside.pop()
        return original(cycle, fault)

    rig.store.write_cycle = slow_write  # type: ignore[method-assign]
    rig.xray.traffic("u0@global", 1, 1)
    threads = [threading.Thread(target=rig.collector.collect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert rig.total() == {"u0@global": 2}


def test_quota_blocks_at_100_percent_and_unblocks_on_reset_raise_or_window(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sync(u1=1000)
    rig.enforcer.enforce(reconcile=True)
    rig.xray.traffic("u1@global", 0, 999)
    rig.collector.collect()
    assert rig.enforcer.enforce().blocked == []
    rig.xray.traffic("u1@global", 0, 1)
    rig.collector.collect()
    result = rig.enforcer.enforce()
    assert result.blocked == ["u1@global"] and result.removed == ["u1@global"]
    assert "u1@global" not in rig.xray.users and "u0@global" in rig.xray.users
    # A reset: usage counts from now on.
    rig.store.reset_quota("u1@global", rig.clock())
    result = rig.enforcer.enforce()
    assert result.added == ["u1@global"]
    assert rig.store.window_usage(rig.clock())["u1@global"] == 0
    rig.xray.traffic("u1@global", 0, 1000)
    rig.collector.collect()
    assert rig.enforcer.enforce().blocked == ["u1@global"]
    # A raised quota.
    rig.sync(u1=5000)
    assert rig.enforcer.enforce().unblocked == ["u1@global"]
    # The window: 30 days later the old traffic no longer counts.
    rig.sync(u1=1000)
    assert rig.enforcer.enforce().blocked == ["u1@global"]
    rig.clock.now += 30 * 86400
    assert window_start_day(rig.clock()) > "2030-01-10"
    result = rig.enforcer.enforce()
    assert result.unblocked == ["u1@global"] and result.added == ["u1@global"]


def test_expiry_disabled_users_and_reconcile_leave_other_users_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.xray.users["proxy-service@cluster"] = RuntimeUser(
        "proxy-service@cluster", "relay", "xtls-rprx-vision"
    )
    policies = [
        Policy("u0@global", "u0", UUIDS["u0@global"], True, "2030-01-10", None),
        Policy("u1@global", "u1", UUIDS["u1@global"], False, None, None),
        Policy("u2@global", "u2", UUIDS["u2@global"], True, None, None),
    ]
    rig.store.replace_policies(policies, None, rig.clock())
    rig.clock.now = datetime(2030, 1, 10, 23, 59, 59, tzinfo=UTC).timestamp()
    rig.enforcer.enforce(reconcile=True)
    assert set(rig.xray.users) == {"u0@global", "u2@global", "u3@global", "proxy-service@cluster"}
    rig.clock.now += 1
    assert rig.enforcer.enforce().removed == ["u0@global"]
    rig.xray.restart()
    rig.xray.users["proxy-service@cluster"] = RuntimeUser(
        "proxy-service@cluster", "relay", "xtls-rprx-vision"
    )
    result = rig.enforcer.enforce(reconcile=True)
    assert sorted(result.removed) == ["u0@global", "u1@global"]
    # u3 is not in the policy (not synced yet) and the relay is never the agent's: both untouched.
    assert set(rig.xray.users) == {"u2@global", "u3@global", "proxy-service@cluster"}
    assert AGENT_MARKER_EMAIL not in {p.email for p in rig.store.policies().values()}


def test_an_api_outage_during_enforcement_is_retried_with_a_reconcile(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store.replace_policies(
        [Policy("u1@global", "u1", UUIDS["u1@global"], False, None, None)], None, rig.clock()
    )
    rig.xray.down = True
    result = rig.enforcer.enforce(reconcile=True)
    assert result.errors and rig.enforcer.runtime is None
    rig.xray.down = False
    result = rig.enforcer.enforce()
    assert result.reconciled and result.removed == ["u1@global"]


def test_metric_label_values_are_escaped() -> None:
    metrics = Registry()
    metrics.gauge(
        "ovpn_agent_test", "A label value with a quote, a backslash and a newline.", 1, {"email": 'a"b\\c\nd'}
    )
    assert 'ovpn_agent_test{email="a\\"b\\\\c\\nd"} 1.0' in metrics.render().splitlines()


def test_the_alert_rules_and_dashboards_use_metrics_the_agent_exports(tmp_path: Path) -> None:
    """Every ovpn_agent_* name in the rendered alert rules and dashboards is in the agent's /metrics, even before
    the first successful collection and without a certificate configured."""
    import re

    from ovpn.agent.service import Agent
    from ovpn.render.monitoring.dashboards import agent_dashboard, users_dashboard

    agent = Agent(("127.0.0.1", 1), tmp_path, "t", api_timeout=0.5)
    try:
        agent.store.replace_policies(
            [Policy("u0@global", "u0", UUIDS["u0@global"], True, None, None)], None, T0
        )
        agent.cycle()
        text = agent.metrics_text()
    finally:
        agent.stop()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    alerts = agent_group("s").alerts + certificate_group("s").alerts
    used = set(re.findall(r"ovpn_agent_[a-z0-9_]+", " ".join(a.expr for a in alerts)))
    used |= set(re.findall(r"ovpn_agent_[a-z0-9_]+", repr(agent_dashboard()) + repr(users_dashboard())))
    assert used and used <= exported, used - exported
    assert sample(text, "ovpn_agent_collector_last_success_timestamp_seconds") == 0
    assert sample(text, "ovpn_agent_cert_expiry_timestamp_seconds") == 0
    assert sample(text, 'ovpn_agent_user_quota_usage_ratio{email="u0@global"}') == 0
