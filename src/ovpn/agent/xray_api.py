"""Xray's gRPC API, as the agent uses it: StatsService for counters, HandlerService for runtime users.

The messages and stubs are generated from Xray-core's own .proto files (`scripts/gen-xray-protos`). Every call has
a deadline. The channel reconnects by itself with a short backoff (gRPC's default backoff grows to two minutes,
far longer than an Xray restart takes); after a call fails with UNAVAILABLE the channel is also dropped and
rebuilt on the next call, so a restarted Xray on the same address is reached again at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

import grpc

from ovpn.agent.counters import USER_COUNTER_PREFIX, parse_user_counter
from ovpn.agent.xray_pb.app.proxyman.command import command_pb2 as handler_pb
from ovpn.agent.xray_pb.app.proxyman.command import command_pb2_grpc as handler_grpc
from ovpn.agent.xray_pb.app.stats.command import command_pb2 as stats_pb
from ovpn.agent.xray_pb.app.stats.command import command_pb2_grpc as stats_grpc
from ovpn.agent.xray_pb.common.protocol import user_pb2
from ovpn.agent.xray_pb.common.serial import typed_message_pb2
from ovpn.agent.xray_pb.proxy.vless import account_pb2

VISION_FLOW = "xtls-rprx-vision"
DEFAULT_TIMEOUT_SECONDS = 5.0

_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
_RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN)

T = TypeVar("T")


class XrayApiError(Exception):
    """An API call failed. `unreachable` is true when Xray did not answer at all (down, restarting, timeout)."""

    def __init__(self, operation: str, code: str, detail: str, *, unreachable: bool) -> None:
        super().__init__(f"Xray API {operation} failed ({code}): {detail}")
        self.operation = operation
        self.code = code
        self.detail = detail
        self.unreachable = unreachable


class SysStats(NamedTuple):
    """Xray's own `GetSysStats` figures."""

    uptime_seconds: int
    goroutines: int


@dataclass(frozen=True)
class RuntimeUser:
    email: str
    uuid: str
    flow: str


def _typed(message: object, type_name: str) -> typed_message_pb2.TypedMessage:
    serialize: Callable[[], bytes] = message.SerializeToString  # type: ignore[attr-defined]
    return typed_message_pb2.TypedMessage(type=type_name, value=serialize())


class XrayApi:
    """A thread-safe client for one Xray API address (`host:port`)."""

    def __init__(self, address: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.address = address
        self.timeout = timeout
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stats: stats_grpc.StatsServiceStub | None = None
        self._handler: handler_grpc.HandlerServiceStub | None = None
        self.reconnects = 0

    # ------------------------------------------------------------------ plumbing

    def _stubs(self) -> tuple[stats_grpc.StatsServiceStub, handler_grpc.HandlerServiceStub]:
        with self._lock:
            if self._channel is None or self._stats is None or self._handler is None:
                self._channel = grpc.insecure_channel(self.address, options=_CHANNEL_OPTIONS)
                self._stats = stats_grpc.StatsServiceStub(self._channel)  # type: ignore[no-untyped-call]
                self._handler = handler_grpc.HandlerServiceStub(self._channel)  # type: ignore[no-untyped-call]
            return self._stats, self._handler

    def _drop_channel(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self.reconnects += 1
            self._channel = self._stats = self._handler = None

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stats = self._handler = None

    def _call(self, operation: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
            detail = (e.details() if isinstance(e, grpc.Call) else str(e)) or ""
            unreachable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            if code in _RECONNECT_CODES and unreachable:
                self._drop_channel()
            raise XrayApiError(
                operation, code.name if code else "UNKNOWN", detail, unreachable=unreachable
            ) from None

    # ------------------------------------------------------------------ StatsService

    def sys_stats(self) -> SysStats:
        stats, _ = self._stubs()
        response = self._call(
            "GetSysStats", lambda: stats.GetSysStats(stats_pb.SysStatsRequest(), timeout=self.timeout)
        )
        return SysStats(uptime_seconds=int(response.Uptime), goroutines=int(response.NumGoroutine))

    def query_stats(self, pattern: str = "", *, reset: bool = False) -> dict[str, int]:
        """Every counter whose name contains `pattern`, by name."""
        stats, _ = self._stubs()
        request = stats_pb.QueryStatsRequest(pattern=pattern, reset=reset)
        response = self._call("QueryStats", lambda: stats.QueryStats(request, timeout=self.timeout))
        return {stat.name: int(stat.value) for stat in response.stat}

    def user_counters(self) -> dict[tuple[str, str], int]:
        """Per-user traffic counters without resetting them: (email, uplink|downlink) -> bytes."""
        counters = {}
        for name, value in self.query_stats(USER_COUNTER_PREFIX).items():
            key = parse_user_counter(name)
            if key is not None:
                counters[key] = value
        return counters

    def get_stat(self, name: str) -> int | None:
        """One counter, or None when Xray has no counter of that name (yet)."""
        stats, _ = self._stubs()
        request = stats_pb.GetStatsRequest(name=name, reset=False)
        try:
            response = self._call("GetStats", lambda: stats.GetStats(request, timeout=self.timeout))
        except XrayApiError as e:
            if e.code == grpc.StatusCode.NOT_FOUND.name:
                return None
            raise
        return int(response.stat.value)

    # ------------------------------------------------------------------ HandlerService

    def add_vless_user(
        self, tag: str, email: str, uuid: str, *, flow: str = VISION_FLOW, level: int = 0
    ) -> Literal["added", "exists"]:
        """Add a VLESS user to the inbound `tag` at runtime; an email Xray already has is not an error."""
        account = _typed(account_pb2.Account(id=uuid, flow=flow), "xray.proxy.vless.Account")
        operation = handler_pb.AddUserOperation(user=user_pb2.User(level=level, email=email, account=account))
        typed = _typed(operation, "xray.app.proxyman.command.AddUserOperation")
        done = self._alter_inbound(tag, "add", typed, already="already exists")
        return "added" if done else "exists"

    def remove_user(self, tag: str, email: str) -> Literal["removed", "absent"]:
        """Remove a user from the inbound `tag` at runtime; a user Xray does not have is not an error."""
        operation = handler_pb.RemoveUserOperation(email=email)
        typed = _typed(operation, "xray.app.proxyman.command.RemoveUserOperation")
        done = self._alter_inbound(tag, "remove", typed, already="not found")
        return "removed" if done else "absent"

    def _alter_inbound(
        self, tag: str, verb: str, operation: typed_message_pb2.TypedMessage, *, already: str
    ) -> bool:
        """Run one AlterInbound operation: True when it changed Xray, False when Xray answered with `already` in
        its error (the user was there already, or was not there to remove)."""
        _, handler = self._stubs()
        request = handler_pb.AlterInboundRequest(tag=tag, operation=operation)
        try:
            self._call(f"AlterInbound({verb})", lambda: handler.AlterInbound(request, timeout=self.timeout))
        except XrayApiError as e:
            if not e.unreachable and already in e.detail:
                return False
            raise
        return True

    def inbound_users(self, tag: str) -> dict[str, RuntimeUser]:
        """The users the inbound `tag` has right now, by lower-cased email (Xray compares emails that way)."""
        _, handler = self._stubs()
        request = handler_pb.GetInboundUserRequest(tag=tag)
        response = self._call(
            "GetInboundUsers", lambda: handler.GetInboundUsers(request, timeout=self.timeout)
        )
        users = {}
        for user in response.users:
            account = account_pb2.Account()
            if user.account.type == "xray.proxy.vless.Account":
                account.ParseFromString(user.account.value)
            users[user.email.lower()] = RuntimeUser(user.email, account.id, account.flow)
        return users

    def inbound_user(self, tag: str, email: str) -> RuntimeUser | None:
        """One user of the inbound `tag`, or None when Xray does not have it."""
        _, handler = self._stubs()
        request = handler_pb.GetInboundUserRequest(tag=tag, email=email)
        try:
            response = self._call(
                "GetInboundUsers", lambda: handler.GetInboundUsers(request, timeout=self.timeout)
            )
        except XrayApiError as e:
            if not e.unreachable and "not found" in e.detail.lower():
                return None
            raise
        for user in response.users:
            if user.email.lower() == email.lower():
                account = account_pb2.Account()
                account.ParseFromString(user.account.value)
                return RuntimeUser(user.email, account.id, account.flow)
        return None

    def probe(self) -> bool:
        try:
            self.sys_stats()
        except XrayApiError:
            return False
        return True
