"""Quota and expiry enforcement, and keeping Xray's runtime users in line with the operator's policy.

For every user in the synced policy:

* blocked by quota when the rolling 30-day usage reaches the limit (the user's own, else the default), and
  unblocked when usage falls below it again, the limit is raised or the quota is reset;
* expired from 00:00 UTC of the day after the expiry date; disabled when the operator disabled them;
* in Xray's runtime exactly when enabled, not expired and not blocked.

Runtime changes go through the HandlerService. The agent remembers what it believes Xray has; a reconcile reads
the real user list and fixes every difference (after an Xray restart, an API outage, a policy sync, at start and
every few cycles). Users that the policy does not name (the relay identity `proxy-service@cluster`, users of a
config the policy was not synced for yet) and the collector's marker are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ovpn.agent.store import Policy
from ovpn.agent.worker import XrayWorker
from ovpn.agent.xray_api import XrayApiError
from ovpn.core.model import AGENT_MARKER_EMAIL

log = logging.getLogger("ovpn-agent.enforce")


@dataclass
class EnforceResult:
    blocked: list[str] = field(default_factory=list)
    unblocked: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reconciled: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "blocked": self.blocked,
            "unblocked": self.unblocked,
            "runtime_added": self.added,
            "runtime_removed": self.removed,
            "errors": self.errors,
            "reconciled": self.reconciled,
        }


@dataclass(eq=False)
class Enforcer(XrayWorker):
    # email -> whether Xray has the user, as far as the agent knows; None means "reconcile first".
    runtime: dict[str, bool] | None = field(default=None, init=False)

    # ------------------------------------------------------------------ runtime operations

    def runtime_op(self, operation: str, result: str) -> None:
        self.metrics.counter(
            "ovpn_agent_runtime_operations_total",
            "Runtime user operations on Xray by operation and result.",
            {"operation": operation, "result": result},
        )

    def add(self, policy: Policy) -> str:
        outcome = self.api.add_vless_user(self.inbound_tag, policy.email, policy.uuid)
        self.runtime_op("add", "success" if outcome == "added" else "already_present")
        if self.runtime is not None:
            self.runtime[policy.email.lower()] = True
        return outcome

    def remove(self, email: str) -> str:
        outcome = self.api.remove_user(self.inbound_tag, email)
        self.runtime_op("remove", "success" if outcome == "removed" else "already_absent")
        if self.runtime is not None:
            self.runtime[email.lower()] = False
        return outcome

    # ------------------------------------------------------------------ decisions

    def desired(self, now: float) -> tuple[dict[str, Policy], dict[str, bool], dict[str, int], int]:
        """Policies, whether each should be in the runtime (before quota changes), usage and the default."""
        policies = self.store.policies()
        usage = self.store.window_usage(now)
        return policies, {e: p.active(now) for e, p in policies.items()}, usage, self.store.default_quota()

    def enforce(self, *, reconcile: bool = False) -> EnforceResult:
        with self.lock:
            return self._enforce(reconcile or self.runtime is None)

    def _enforce(self, reconcile: bool) -> EnforceResult:
        now = self.clock()
        result = EnforceResult()
        policies, active, usage, default = self.desired(now)
        states = self.store.quota_states()
        blocked: dict[str, bool] = {}
        for email, policy in policies.items():
            quota = policy.effective_quota(default)
            over = usage.get(email, 0) >= quota
            was = states[email].blocked if email in states else False
            if over != was:
                try:
                    self.store.set_blocked(email, over, now)
                except Exception as e:
                    self.metrics.counter("ovpn_agent_db_write_errors_total", "Failed database writes.",
                                         {"operation": "quota"})  # fmt: skip
                    result.errors.append(f"{email}: quota state not written: {e}")
                    over = was
                else:
                    (result.blocked if over else result.unblocked).append(email)
                    action = "block" if over else "unblock"
                    self.metrics.counter("ovpn_agent_quota_events_total", "Quota blocks and unblocks.",
                                         {"action": action, "result": "success"})  # fmt: skip
                    log.info("%s %s: %d of %d bytes in the window", action, email, usage.get(email, 0), quota)
            blocked[email] = over
        want = {email.lower(): active[email] and not blocked[email] for email in policies}
        by_lower = {email.lower(): policies[email] for email in policies}
        try:
            if reconcile:
                present = self.api.inbound_users(self.inbound_tag)
                self.runtime = {email: email in present for email in want}
                result.reconciled = True
                for email, user in present.items():
                    # A policy user whose runtime id differs (a changed uuid) leaves and comes back with the new id.
                    if email in by_lower and user.uuid != by_lower[email].uuid:
                        self.remove(by_lower[email].email)
                        result.removed.append(by_lower[email].email)
            assert self.runtime is not None
            for email, should in sorted(want.items()):
                if email == AGENT_MARKER_EMAIL:
                    continue
                has = self.runtime.get(email, False)
                if should and not has:
                    self.add(by_lower[email])
                    result.added.append(by_lower[email].email)
                elif has and not should:
                    self.remove(by_lower[email].email)
                    result.removed.append(by_lower[email].email)
        except XrayApiError as e:
            self.runtime_op("reconcile" if reconcile else "enforce", "error")
            result.errors.append(str(e))
            self.runtime = None  # reconcile on the next chance
        return result
