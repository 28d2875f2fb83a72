"""`ovpn-agent`: traffic accounting, quota and expiry enforcement, live user changes, health and metrics for
the host's Xray, served on the compose network (published on the host's loopback only).

It starts and answers even while Xray is unreachable, and says so: `/health` reports `degraded` and the
`ovpn_agent_xray_api_up` gauge is 0. Reads are open; every request that changes state needs the bearer token.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ovpn import __version__
from ovpn.agent.certcheck import CertCheck
from ovpn.agent.http_limits import MAX_WORKERS, REQUEST_SECONDS, BoundedHTTPServer, DeadlineHandler
from ovpn.agent.metrics import Registry, family_lines
from ovpn.agent.store import Policy, Store, day_of, expiry_cutoff, window_start_day
from ovpn.core.model import MAX_QUOTA_BYTES, RESERVED_EMAILS

# The console script imports this module first: without the agent extra, say what to install in one line.
AGENT_EXTRA_MODULES = {"grpc", "google", "google.protobuf", "typing_extensions"}
try:
    from ovpn.agent.collector import Collector, CollectResult
    from ovpn.agent.enforce import Enforcer, EnforceResult
    from ovpn.agent.xray_api import XrayApi, XrayApiError
except ModuleNotFoundError as missing:
    if missing.name not in AGENT_EXTRA_MODULES:
        raise
    raise SystemExit(
        f"ovpn-agent needs the agent extra ({missing.name} is not installed): pip install 'ovpn[agent]'"
    ) from None

log = logging.getLogger("ovpn-agent")
PROBE_TIMEOUT_SECONDS = 2.0
DEFAULT_POLL_SECONDS = 30.0
DEFAULT_INBOUND_TAG = "vless-reality"
RECONCILE_EVERY = 10
MAX_BODY_BYTES = 16 * 1024 * 1024
EXPIRING_SECONDS = 2 * 86400

Clock = Callable[[], float]


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces, as in ':9090'


def iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------- input checks

# Matched whole (fullmatch): `$` would let a trailing newline through.
_EMAIL = re.compile(r"[^\s\"\\>\x00-\x1f\x7f]{1,254}")
_USERNAME = re.compile(r"[^\x00-\x1f\x7f]{1,254}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _field(item: dict[str, Any], name: str, where: str) -> Any:
    if name not in item:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: missing field {name!r}")
    return item[name]


def _utf8(value: str) -> bool:
    """JSON can carry lone surrogates (`"\\ud800"`), which no UTF-8 store or log can take."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_email(value: object, where: str) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value) or ">>>" in value or not _utf8(value):
        raise ApiError(
            HTTPStatus.BAD_REQUEST, f"{where}: email must be a non-empty string without spaces or quotes"
        )
    return value


def check_uuid(value: object, where: str) -> str:
    try:
        return str(uuid_module.UUID(str(value))) if isinstance(value, str) else ""
    except ValueError:
        pass
    raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: uuid must be a UUID string")


def check_expiry(value: object, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: expiry must be null or a date YYYY-MM-DD")


def check_quota(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, f"{where}: quota_bytes must be null (the default) or a positive integer"
        )
    if value > MAX_QUOTA_BYTES:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, f"{where}: quota_bytes must be at most {MAX_QUOTA_BYTES} (1 PiB)"
        )
    return value


def check_bool(value: object, where: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: {name} must be true or false")
    return value


def parse_policies(body: dict[str, Any]) -> tuple[list[Policy], int | None]:
    users = body.get("users")
    if not isinstance(users, list):
        raise ApiError(HTTPStatus.BAD_REQUEST, "users must be a list")
    policies: list[Policy] = []
    seen: set[str] = set()
    for index, item in enumerate(users):
        where = f"users[{index}]"
        if not isinstance(item, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{where} must be an object")
        email = check_email(_field(item, "email", where), where)
        if email.lower() in seen:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: duplicate email {email!r}")
        if email.lower() in RESERVED_EMAILS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{where}: {email} is reserved and cannot be a user")
        seen.add(email.lower())
        username = item.get("username", email.split("@")[0])
        if not isinstance(username, str) or not _USERNAME.fullmatch(username) or not _utf8(username):
            raise ApiError(HTTPStatus.BAD_REQUEST,
                           f"{where}: username must be a non-empty string without control characters")  # fmt: skip
        policies.append(
            Policy(
                email=email,
                username=username,
                uuid=check_uuid(_field(item, "uuid", where), where),
                enabled=check_bool(_field(item, "enabled", where), where, "enabled"),
                expiry=check_expiry(item.get("expiry"), where),
                quota_bytes=check_quota(item.get("quota_bytes"), where),
            )
        )
    return policies, check_quota(body.get("default_quota_bytes"), "default_quota_bytes")


# ---------------------------------------------------------------------------------------------- the agent


class Agent:
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

    def _user_rows(self, email: str | None) -> list[dict[str, Any]]:
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
        rows = self._user_rows(email)
        expiring = [
            r
            for r in rows
            if r["expires_at"] and not r["expired"] and expiry_cutoff(r["expiry"]) - now <= EXPIRING_SECONDS  # type: ignore[operator]
        ]
        return {
            "time": iso(now),
            "effective_enabled_users": sum(1 for r in rows if r["effective_enabled"]),
            "expiring_2d_users": len(expiring),
            "expired_users": sum(1 for r in rows if r["expired"]),
            "users": rows,
        }

    def quota_status(self, email: str | None) -> dict[str, object]:
        now = self.clock()
        rows = self._user_rows(email)
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
        users = body.get("users")
        if not isinstance(users, list):
            raise ApiError(HTTPStatus.BAD_REQUEST, "users must be a list")
        quotas: dict[str, int | None] = {}
        for index, item in enumerate(users):
            where = f"users[{index}]"
            if not isinstance(item, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{where} must be an object")
            email = check_email(_field(item, "email", where), where)
            quotas[email] = check_quota(item.get("quota_bytes"), where)
        default = check_quota(body.get("default_quota_bytes"), "default_quota_bytes")
        with self.work:
            unknown = sorted(set(quotas) - set(self.store.policies()))
            if unknown:
                raise ApiError(HTTPStatus.NOT_FOUND, f"unknown users: {', '.join(unknown)}; sync the users first",
                               unknown=unknown)  # fmt: skip
            self.store.update_quotas(quotas, default, self.clock())
            enforcement = self._enforced(reconcile=False)
        return {"ok": True, "users": len(quotas), "enforcement": enforcement}

    def _known(self, body: dict[str, Any]) -> Policy:
        email = check_email(_field(body, "email", "request"), "request")
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

    # ------------------------------------------------------------------ metrics

    def metrics_text(self) -> str:
        self.xray_api_up()
        now = self.clock()
        lines = [
            "# HELP ovpn_agent_up The agent is running.",
            "# TYPE ovpn_agent_up gauge",
            "ovpn_agent_up 1",
            "# HELP ovpn_agent_build_info The agent's version.",
            "# TYPE ovpn_agent_build_info gauge",
            f'ovpn_agent_build_info{{version="{__version__}"}} 1',
        ]
        lines += self.metrics.render()
        totals = self.store.totals()
        lines += family_lines(
            "ovpn_agent_user_traffic_bytes_total", "counter", "Bytes counted per user and direction.",
            [({"email": e, "direction": d}, v) for e, (u, dn) in sorted(totals.items())
             for d, v in (("uplink", u), ("downlink", dn))],
        )  # fmt: skip
        rows = self._user_rows(None)
        policies = self.store.policies()
        per_user: list[tuple[str, str, str, Callable[[dict[str, Any]], float]]] = [
            ("ovpn_agent_user_window_30d_usage_bytes", "gauge", "Bytes in the rolling 30-day quota window.",
             lambda r: r["window_30d_usage_bytes"]),
            ("ovpn_agent_user_window_30d_quota_bytes", "gauge", "The user's 30-day quota.", lambda r: r["quota_bytes"]),
            ("ovpn_agent_user_quota_usage_ratio", "gauge", "Used share of the quota (1 = quota reached).",
             lambda r: r["quota_usage_ratio"]),
            ("ovpn_agent_user_quota_blocked", "gauge", "1 while the quota blocks the user.",
             lambda r: int(r["blocked_by_quota"])),
            ("ovpn_agent_user_expiry_timestamp_seconds", "gauge",
             "When the user expires (00:00 UTC after the expiry date); 0 = never.",
             lambda r: expiry_cutoff(r["expiry"]) or 0),
            ("ovpn_agent_user_expired", "gauge", "1 once the user has expired.", lambda r: int(r["expired"])),
            ("ovpn_agent_user_effective_enabled", "gauge", "1 while enabled and not expired.",
             lambda r: int(r["effective_enabled"])),
        ]  # fmt: skip
        for name, kind, help_text, value in per_user:
            lines += family_lines(name, kind, help_text, [({"email": r["email"]}, value(r)) for r in rows])
        ratios = [float(r["quota_usage_ratio"]) for r in rows]
        summary: list[tuple[str, str, float]] = [
            ("ovpn_agent_quota_blocked_users", "Users the quota blocks.", sum(1 for r in rows if r["blocked_by_quota"])),
            ("ovpn_agent_quota_users_over_80", "Users at 80% of their quota or more.", sum(1 for x in ratios if x >= 0.8)),
            ("ovpn_agent_quota_users_over_95", "Users at 95% of their quota or more.", sum(1 for x in ratios if x >= 0.95)),
            ("ovpn_agent_users_expired", "Expired users.", sum(1 for r in rows if r["expired"])),
            ("ovpn_agent_users_expiring_2d", "Users expiring within two days.",
             sum(1 for p in policies.values() if not p.expired(now) and p.expiry
                 and (expiry_cutoff(p.expiry) or 0) - now <= EXPIRING_SECONDS)),
            ("ovpn_agent_policy_users", "Users in the synced policy.", len(policies)),
        ]  # fmt: skip
        for name, help_text, count in summary:
            lines += family_lines(name, "gauge", help_text, [({}, count)])
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- HTTP


GET_ROUTES = {"/health", "/metrics", "/stats/total", "/stats/daily", "/quota/status", "/users/status"}
POST_ROUTES = {"/collect", "/users/sync", "/quota/sync", "/quota/reset", "/runtime/user/add",
               "/runtime/user/remove"}  # fmt: skip
TOKEN_GET_ROUTES = {"/quota/policies"}


def make_handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(DeadlineHandler):
        server_version = f"ovpn-agent/{__version__}"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            try:
                if self.headers.get("Content-Length") and method == "GET":
                    self._drain()
                known = GET_ROUTES | POST_ROUTES | TOKEN_GET_ROUTES
                if path not in known:
                    raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
                expected = "POST" if path in POST_ROUTES else "GET"
                if method != expected:
                    self._drain()
                    raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {expected}", allow=expected)
                if path in POST_ROUTES or path in TOKEN_GET_ROUTES:
                    self._authorize()
                if path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", agent.metrics_text().encode())
                    return
                self._json(200, self._route(path, query))
            except TimeoutError as e:  # the body did not arrive in time (DeadlineHandler)
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": str(e)})
            except ApiError as e:
                if e.status == HTTPStatus.METHOD_NOT_ALLOWED:
                    self._json(e.status, {"error": e.message, **e.extra}, allow=str(e.extra.get("allow", "")))
                else:
                    self._json(e.status, {"error": e.message, **e.extra})
            except Exception as e:
                log.exception("%s %s failed", method, path)
                self._json(500, {"error": f"internal error: {type(e).__name__}"})

        def _route(self, path: str, query: dict[str, list[str]]) -> object:
            email = query.get("email", [None])[0]
            if path == "/health":
                return agent.health()
            if path == "/stats/total":
                return agent.stats_total()
            if path == "/stats/daily":
                day = query.get("date", [day_of(agent.clock())])[0]
                if not _DATE.match(day):
                    raise ApiError(HTTPStatus.BAD_REQUEST, "date must be YYYY-MM-DD")
                try:
                    date.fromisoformat(day)
                except ValueError:
                    raise ApiError(HTTPStatus.BAD_REQUEST, "date must be YYYY-MM-DD") from None
                return agent.stats_daily(day)
            if path == "/quota/status":
                return agent.quota_status(email)
            if path == "/users/status":
                return agent.users_status(email)
            if path == "/quota/policies":
                return agent.policies()
            if path == "/collect":
                self._body(optional=True)
                return agent.collect_now()
            body = self._body()
            handlers: dict[str, Callable[[dict[str, Any]], dict[str, object]]] = {
                "/users/sync": agent.sync_users,
                "/quota/sync": agent.sync_quota,
                "/quota/reset": agent.quota_reset,
                "/runtime/user/add": agent.runtime_add,
                "/runtime/user/remove": agent.runtime_remove,
            }
            return handlers[path](body)

        def _authorize(self) -> None:
            if not agent.token:
                self._drain()
                raise ApiError(HTTPStatus.UNAUTHORIZED, "this agent has no token configured: changes are refused",
                               hint="set OVPN_AGENT_TOKEN and restart the agent")  # fmt: skip
            header = self.headers.get("Authorization", "")
            scheme, _, presented = header.partition(" ")
            if scheme.lower() != "bearer" or not presented:
                self._drain()
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED, "missing bearer token", hint="send Authorization: Bearer TOKEN"
                )
            if not hmac.compare_digest(presented.strip().encode(), agent.token.encode()):
                self._drain()
                raise ApiError(HTTPStatus.UNAUTHORIZED, "wrong token",
                               hint="the CLI and the agent disagree: redeploy, or check OVPN_AGENT_TOKEN in .env")  # fmt: skip

        def _drain(self) -> None:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
                self.rfile.read(int(length))
            elif length:
                self.close_connection = True

        def _body(self, optional: bool = False) -> dict[str, Any]:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                if optional:
                    return {}
                raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a JSON body with Content-Length is required")
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                raise ApiError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes"
                )
            raw = self.rfile.read(int(length))
            if optional and not raw.strip():
                return {}
            try:
                body = json.loads(raw)
            except RecursionError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "malformed JSON: nested too deeply") from None
            except ValueError as e:  # also UnicodeDecodeError, and an integer of more than 4300 digits
                raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {str(e).split(';')[0]}") from None
            if not isinstance(body, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return body

        def _json(self, status: int, document: object, **headers: str) -> None:
            self._send(status, "application/json", json.dumps(document, indent=1).encode() + b"\n", **headers)

        def _send(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                if value:
                    self.send_header(name.capitalize(), value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


AgentServer = BoundedHTTPServer


def read_token(env: dict[str, str]) -> str:
    if env.get("OVPN_AGENT_TOKEN_FILE"):
        return Path(env["OVPN_AGENT_TOKEN_FILE"]).read_text().strip()
    return env.get("OVPN_AGENT_TOKEN", "").strip()


def serve(
    agent: Agent,
    listen: tuple[str, int],
    *,
    workers: int = MAX_WORKERS,
    request_seconds: float = REQUEST_SECONDS,
) -> AgentServer:
    """The agent's HTTP server: at most `workers` connections at once, each request read within
    `request_seconds` (see ovpn.agent.http_limits for why these bounds)."""
    return AgentServer(listen, make_handler(agent), workers=workers, request_seconds=request_seconds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ovpn-agent", description=__doc__)
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 9090), help="HOST:PORT to serve on")
    parser.add_argument("--xray-api", type=host_port, default=("127.0.0.1", 10085), help="Xray API HOST:PORT")
    parser.add_argument("--db-path", type=Path, default=Path("/var/lib/ovpn-agent"), help="data directory")
    parser.add_argument("--inbound-tag", default=DEFAULT_INBOUND_TAG, help="the VLESS inbound users live in")
    parser.add_argument("--poll-interval", type=float,
                        default=float(os.environ.get("OVPN_AGENT_POLL_INTERVAL", DEFAULT_POLL_SECONDS)),
                        help="seconds between collections (default 30)")  # fmt: skip
    parser.add_argument("--cert-file", default=os.environ.get("OVPN_AGENT_CERT_FILE", ""),
                        help="PEM certificate (or fullchain) whose expiry to export; empty = not configured")  # fmt: skip
    parser.add_argument("--log-level", default=os.environ.get("OVPN_AGENT_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be positive")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    token = read_token(dict(os.environ))
    if not token:
        log.warning("no OVPN_AGENT_TOKEN: changing endpoints will refuse every request")
    agent = Agent(args.xray_api, args.db_path, token, inbound_tag=args.inbound_tag,
                  poll_interval=args.poll_interval, cert_file=args.cert_file)  # fmt: skip
    server = serve(agent, args.listen)
    up, error = agent.xray_api_up()
    state = "reachable" if up else f"NOT reachable ({error}; serving health and metrics anyway)"
    log.info("ovpn-agent %s on %s:%d; Xray API %s:%d is %s", __version__, *args.listen, *args.xray_api, state)
    agent.start_background()
    # `docker stop` sends SIGTERM: finish the request in flight, stop the collector, close the database.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        agent.stop()


if __name__ == "__main__":
    main()
