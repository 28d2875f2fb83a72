"""The agent's service: its state (the store, Xray's API, the collector and the enforcer), the background cycle,
and what each endpoint reads or changes. ovpn.agent.http_api maps requests onto it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ovpn import __version__
from ovpn.agent.certcheck import CertCheck
from ovpn.agent.checks import ApiError, check_uuid, parse_policies, parse_quotas, request_email
from ovpn.agent.collector import Collector, CollectResult
from ovpn.agent.enforce import Enforcer, EnforceResult
from ovpn.agent.metrics import Registry
from ovpn.agent.store import Policy, Store, day_of, expiring_soon, expiry_cutoff, window_start_day
from ovpn.agent.user_metrics import UserMetrics
from ovpn.agent.worker import Clock
from ovpn.agent.xray_api import XrayApi, XrayApiError

log = logging.getLogger("ovpn-agent")
PROBE_TIMEOUT_SECONDS = 2.0
DEFAULT_POLL_SECONDS = 30.0
DEFAULT_INBOUND_TAG = "vless-reality"
RECONCILE_EVERY = 10


def iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class Agent:
    """One host's agent. Every state change (collect, enforce, sync, runtime operations) holds `work`."""

    def __init__(
        self,
        xray_api: tuple[str, int],
        db_path: Path,
        token: str,
        *,
        inbound_tag: str = DEFAULT_INBOUND_TAG,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        clock: Clock = time.time,
        api_timeout: float = 5.0,
        fault: Callable[[str], None] | None = None,
        cert_file: str | Path | None = None,
    ) -> None:
        self.xray_api = xray_api
        self.db_path = db_path
        self.token = token
        self.inbound_tag = inbound_tag
        self.poll_interval = poll_interval
        self.clock = clock
        self.started = time.time()
        self.store = Store(db_path)
        self.api = XrayApi(f"{xray_api[0]}:{xray_api[1]}", timeout=api_timeout)
        self.probe_api = XrayApi(f"{xray_api[0]}:{xray_api[1]}", timeout=PROBE_TIMEOUT_SECONDS)
        self.metrics = Registry()
        self.metrics.gauge("ovpn_agent_up", "The agent is running.", 1)
        self.metrics.gauge("ovpn_agent_build_info", "The agent's version.", 1, {"version": __version__})
        self.work = (
            threading.RLock()
        )  # every state change (collect, enforce, sync, runtime ops) is single-flight
        self.collector = Collector(self.store, self.api, inbound_tag=inbound_tag, lock=self.work,
                                   metrics=self.metrics, clock=clock, fault=fault)  # fmt: skip
        self.enforcer = Enforcer(self.store, self.api, inbound_tag=inbound_tag, lock=self.work,
                                 metrics=self.metrics, clock=clock)  # fmt: skip
        self.cert = CertCheck(cert_file, self.metrics)
        self.cert.check()  # at start; then from the background loop, at most every ten minutes
        self.api_was_up: bool | None = None
        self.cycles = 0
        self.last_result: CollectResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for operation in ("add", "remove"):
            for result in ("success", "error", "blocked_by_quota", "blocked_by_policy"):
                self.metrics.declare_counter("ovpn_agent_runtime_operations_total",
                                             "Runtime user operations on Xray by operation and result.",
                                             {"operation": operation, "result": result})  # fmt: skip
        self.metrics.add(UserMetrics(self))

    # ------------------------------------------------------------------ health

    def xray_api_up(self) -> tuple[bool, str | None]:
        error: str | None = None
        try:
            self.probe_api.sys_stats()
        except XrayApiError as e:
            error = e.detail or e.code
        up = error is None
        self.metrics.gauge("ovpn_agent_xray_api_up", "Whether the Xray API answered the last probe.", int(up))
        return up, error

    def health(self) -> dict[str, object]:
        api_up, error = self.xray_api_up()
        last = self.store.meta("last_collect_at")
        reset = self.store.meta("last_reset_at")
        return {
            "status": "ok" if api_up else "degraded",
            "service": "ovpn-agent",
            "version": __version__,
            "xray_api": {"address": f"{self.xray_api[0]}:{self.xray_api[1]}", "up": api_up, "error": error},
            "db_path": str(self.db_path),
            "poll_interval_seconds": self.poll_interval,
            "last_collect_at": iso(float(last)) if last else None,
            "last_reset_at": iso(float(reset)) if reset else None,
            "last_collect_error": self.last_result.error if self.last_result else None,
            "certificate": self.cert.status.as_json(),
            "uptime_seconds": round(time.time() - self.started, 1),
            "time": iso(self.clock()),
        }

    # ------------------------------------------------------------------ the cycle

    def cycle(self) -> tuple[CollectResult, EnforceResult | None]:
        """Collect, then enforce; reconcile the runtime after an Xray restart or API outage, and periodically."""
        with self.work:
            result = self.collector.collect()
            self.last_result = result
            api_up = not result.api_failed
            recovered = api_up and self.api_was_up is False
            self.api_was_up = api_up
            if not api_up:
                self.enforcer.runtime = None
                return result, None
            self.cycles += 1
            restarted = result.xray_restarted or result.new_xray_process
            reconcile = restarted or recovered or self.cycles % RECONCILE_EVERY == 0
            enforced = self.enforcer.enforce(reconcile=reconcile)
            if self.cycles % 120 == 1:
                self.store.prune(self.clock())
            return result, enforced

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self.cert.check_if_due()
            try:
                self.cycle()
            except Exception:
                log.exception("collection cycle failed")
            self._stop.wait(self.poll_interval)

    def start_background(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="collector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.api.close()
        self.probe_api.close()
        self.store.close()

    # ------------------------------------------------------------------ reads

    def stats_total(self) -> list[dict[str, object]]:
        return [
            {"email": email, "uplink_bytes": up, "downlink_bytes": down, "total_bytes": up + down}
            for email, (up, down) in sorted(self.store.totals().items())
        ]

    def stats_daily(self, day: str) -> dict[str, object]:
        rows = self.store.daily(day)
        return {
            "date": day,
            "users": [
                {"email": e, "uplink_bytes": u, "downlink_bytes": d, "total_bytes": u + d}
                for e, (u, d) in sorted(rows.items())
            ],
        }

    def user_rows(self, email: str | None) -> list[dict[str, Any]]:
        now = self.clock()
        policies = self.store.policies()
        if email is not None and email not in policies:
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown user {email!r}: it is not in the synced policy")
        usage = self.store.window_usage(now)
        states = self.store.quota_states()
        default = self.store.default_quota()
        runtime = self.enforcer.runtime
        rows = []
        for e, p in sorted(policies.items()):
            if email is not None and e != email:
                continue
            quota = p.effective_quota(default)
            used = usage.get(e, 0)
            state = states.get(e)
            cutoff = expiry_cutoff(p.expiry)
            rows.append(
                {
                    "username": p.username,
                    "email": e,
                    "enabled": p.enabled,
                    "expiry": p.expiry,
                    "expires_at": iso(cutoff),
                    "expired": p.expired(now),
                    "effective_enabled": p.active(now),
                    "days_until_expiry": None if cutoff is None else int((cutoff - now) // 86400),
                    "quota_bytes": quota,
                    "quota_is_default": p.quota_bytes is None,
                    "window_30d_usage_bytes": used,
                    "quota_usage_ratio": round(used / quota, 6),
                    "blocked_by_quota": bool(state and state.blocked),
                    "blocked_at": iso(state.blocked_at) if state else None,
                    "quota_reset_at": iso(state.reset_at) if state else None,
                    "in_runtime": None if runtime is None else runtime.get(e.lower(), False),
                }
            )
        return rows

    def users_status(self, email: str | None) -> dict[str, object]:
        now = self.clock()
        rows = self.user_rows(email)
        return {
            "time": iso(now),
            "effective_enabled_users": sum(1 for r in rows if r["effective_enabled"]),
            "expiring_2d_users": sum(1 for r in rows if expiring_soon(r["expiry"], now)),
            "expired_users": sum(1 for r in rows if r["expired"]),
            "users": rows,
        }

    def quota_status(self, email: str | None) -> dict[str, object]:
        now = self.clock()
        rows = self.user_rows(email)
        keys = ("email", "quota_bytes", "quota_is_default", "window_30d_usage_bytes", "quota_usage_ratio",
                "blocked_by_quota", "blocked_at", "quota_reset_at", "in_runtime")  # fmt: skip
        return {
            "window_30d_start": window_start_day(now),
            "window_30d_end": day_of(now),
            "default_quota_bytes": self.store.default_quota(),
            "blocked_users": sum(1 for r in rows if r["blocked_by_quota"]),
            "users": [{k: r[k] for k in keys} for r in rows],
        }

    def policies(self) -> dict[str, object]:
        return {
            "default_quota_bytes": self.store.default_quota(),
            "users": [
                {"email": p.email, "username": p.username, "uuid": p.uuid, "enabled": p.enabled,
                 "expiry": p.expiry, "quota_bytes": p.quota_bytes}
                for p in sorted(self.store.policies().values(), key=lambda p: p.email)
            ],
        }  # fmt: skip

    # ------------------------------------------------------------------ writes

    def _enforced(self, reconcile: bool) -> dict[str, object]:
        try:
            return self.enforcer.enforce(reconcile=reconcile).as_json()
        except XrayApiError as e:  # pragma: no cover - enforce catches its own API errors
            return {"errors": [str(e)]}

    def sync_users(self, body: dict[str, Any]) -> dict[str, object]:
        policies, default = parse_policies(body)
        with self.work:
            old = set(self.store.policies())
            self.store.replace_policies(policies, default, self.clock())
            dropped = sorted(old - {p.email for p in policies})
            removed, errors = [], []
            for email in dropped:  # users the operator deleted leave the runtime too
                try:
                    if self.enforcer.remove(email) == "removed":
                        removed.append(email)
                except XrayApiError as e:
                    errors.append(f"{email}: {e}")
            enforcement = self._enforced(reconcile=True)
        return {"ok": True, "users": len(policies), "dropped_users_removed": removed, "errors": errors,
                "enforcement": enforcement}  # fmt: skip

    def sync_quota(self, body: dict[str, Any]) -> dict[str, object]:
        quotas, default = parse_quotas(body)
        with self.work:
            unknown = sorted(set(quotas) - set(self.store.policies()))
            if unknown:
                raise ApiError(HTTPStatus.NOT_FOUND, f"unknown users: {', '.join(unknown)}; sync the users first",
                               unknown=unknown)  # fmt: skip
            self.store.update_quotas(quotas, default, self.clock())
            enforcement = self._enforced(reconcile=False)
        return {"ok": True, "users": len(quotas), "enforcement": enforcement}

    def _known(self, body: dict[str, Any]) -> Policy:
        email = request_email(body)
        policy = self.store.policies().get(email)
        if policy is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"unknown user {email!r}: it is not in the synced policy",
                           hint="sync the users first (POST /users/sync)")  # fmt: skip
        tag = body.get("inbound_tag", self.inbound_tag)
        if tag != self.inbound_tag:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"inbound_tag must be {self.inbound_tag!r}")
        return policy

    def quota_reset(self, body: dict[str, Any]) -> dict[str, object]:
        with self.work:
            policy = self._known(body)
            self.store.reset_quota(policy.email, self.clock())
            self.metrics.counter("ovpn_agent_quota_events_total", "Quota blocks and unblocks.",
                                 {"action": "manual_reset", "result": "success"})  # fmt: skip
            enforcement = self.enforcer.enforce(reconcile=False)
        return {"ok": True, "email": policy.email, "runtime_readd": policy.email in enforcement.added,
                "enforcement": enforcement.as_json()}  # fmt: skip

    def runtime_add(self, body: dict[str, Any]) -> dict[str, object]:
        with self.work:
            policy = self._known(body)
            if "uuid" in body and check_uuid(body["uuid"], "request") != policy.uuid:
                raise ApiError(HTTPStatus.CONFLICT, f"{policy.email}: uuid differs from the synced policy",
                               hint="sync the users first (POST /users/sync)")  # fmt: skip
            now = self.clock()
            if not policy.active(now):
                self.enforcer.runtime_op("add", "blocked_by_policy")
                why = "expired" if policy.expired(now) else "disabled"
                raise ApiError(HTTPStatus.CONFLICT, f"{policy.email} is {why}: not added", reason=why)
            state = self.store.quota_states().get(policy.email)
            if state is not None and state.blocked:
                self.enforcer.runtime_op("add", "blocked_by_quota")
                raise ApiError(HTTPStatus.CONFLICT, f"{policy.email} is blocked by quota: not added",
                               reason="quota", hint="reset the quota (POST /quota/reset) or raise it")  # fmt: skip
            try:
                outcome = self.enforcer.add(policy)
            except XrayApiError as e:
                self.enforcer.runtime_op("add", "error")
                raise ApiError(HTTPStatus.BAD_GATEWAY, str(e)) from None
        return {"ok": True, "email": policy.email, "result": outcome}

    def runtime_remove(self, body: dict[str, Any]) -> dict[str, object]:
        with self.work:
            policy = self._known(body)
            try:
                outcome = self.enforcer.remove(policy.email)
            except XrayApiError as e:
                self.enforcer.runtime_op("remove", "error")
                raise ApiError(HTTPStatus.BAD_GATEWAY, str(e)) from None
        return {"ok": True, "email": policy.email, "result": outcome, "absent": outcome == "absent"}

    def collect_now(self) -> dict[str, object]:
        result, enforced = self.cycle()
        return {**result.as_json(), "enforcement": enforced.as_json() if enforced else None}

    def metrics_text(self) -> str:
        self.xray_api_up()
        return self.metrics.render()
