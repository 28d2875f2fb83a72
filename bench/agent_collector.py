"""Collector cost per cycle for 10,000 users (20,000 counters, every one of them moved since the last cycle), the
quota/expiry enforcement pass over 10,000 synced users, and one /metrics rendering.

Xray's API is played by a gRPC server on 127.0.0.1 built from the same generated stubs (real gRPC transport and
protobuf decoding on the agent's side; creating 20,000 live counters in a real Xray would take 10,000 real
connections). Prints medians. Run from the repository root: .venv/bin/python -m bench.agent_collector [--users N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from ovpn.agent.collector import Collector
from ovpn.agent.enforce import Enforcer
from ovpn.agent.metrics import Registry
from ovpn.agent.store import Policy, Store
from ovpn.agent.xray_api import XrayApi
from ovpn.agent.xray_pb.app.proxyman.command import command_pb2 as handler_pb
from ovpn.agent.xray_pb.app.proxyman.command import command_pb2_grpc as handler_grpc
from ovpn.agent.xray_pb.app.stats.command import command_pb2 as stats_pb
from ovpn.agent.xray_pb.app.stats.command import command_pb2_grpc as stats_grpc
from ovpn.agent.xray_pb.common.protocol import user_pb2
from ovpn.agent.xray_pb.common.serial import typed_message_pb2
from ovpn.agent.xray_pb.proxy.vless import account_pb2


class FakeXray(stats_grpc.StatsServiceServicer, handler_grpc.HandlerServiceServicer):
    def __init__(self, users: int) -> None:
        self.emails = [f"user{i}@global" for i in range(users)]
        self.round = 0
        self.runtime: dict[str, str] = {}

    def QueryStats(self, request: Any, context: Any) -> Any:
        self.round += 1
        stats = []
        for i, email in enumerate(self.emails):
            base = (i + 1) * 1000 * self.round
            stats.append(stats_pb.Stat(name=f"user>>>{email}>>>traffic>>>uplink", value=base // 10))
            stats.append(stats_pb.Stat(name=f"user>>>{email}>>>traffic>>>downlink", value=base))
        return stats_pb.QueryStatsResponse(stat=stats)

    def GetInboundUsers(self, request: Any, context: Any) -> Any:
        users = []
        for email, user_id in self.runtime.items():
            if not request.email or request.email == email:
                account = typed_message_pb2.TypedMessage(
                    type="xray.proxy.vless.Account",
                    value=account_pb2.Account(id=user_id, flow="xtls-rprx-vision").SerializeToString(),
                )
                users.append(user_pb2.User(email=email, account=account))
        return handler_pb.GetInboundUserResponse(users=users)

    def AlterInbound(self, request: Any, context: Any) -> Any:
        if request.operation.type.endswith("AddUserOperation"):
            op = handler_pb.AddUserOperation.FromString(request.operation.value)
            account = account_pb2.Account.FromString(op.user.account.value)
            self.runtime[op.user.email] = account.id
        else:
            self.runtime.pop(handler_pb.RemoveUserOperation.FromString(request.operation.value).email, None)
        return handler_pb.AlterInboundResponse()


def timed(fn: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    fake = FakeXray(args.users)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    stats_grpc.add_StatsServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    handler_grpc.add_HandlerServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        api = XrayApi(f"127.0.0.1:{port}", timeout=30)
        lock, metrics = threading.RLock(), Registry()
        collector = Collector(store, api, inbound_tag="vless-reality", lock=lock, metrics=metrics)
        enforcer = Enforcer(store, api, inbound_tag="vless-reality", lock=lock, metrics=metrics)
        policies = [Policy(e, e.split("@")[0], str(uuid.uuid4()), True, None, None) for e in fake.emails]
        store.replace_policies(policies, None, time.time())
        started = time.perf_counter()
        enforcer.enforce(reconcile=True)
        first = time.perf_counter() - started

        def cycle() -> None:
            assert collector.collect().ok

        cycle()  # the first cycle writes every counter position
        cycles = timed(cycle, args.runs)
        enforce = timed(lambda: enforcer.enforce(), args.runs)
        reconcile = timed(lambda: enforcer.enforce(reconcile=True), args.runs)

        from ovpn.agent.service import Agent

        agent = Agent(("127.0.0.1", port), Path(tmp), "t")
        render = timed(agent.metrics_text, 3)
        lines = agent.metrics_text().count("\n")
        agent.stop()
        api.close()
    server.stop(0)
    print(f"users: {args.users} (counters per cycle: {2 * args.users}, all moved)")
    print(
        f"collector cycle (QueryStats + deltas + one transaction), median: {statistics.median(cycles) * 1000:.0f} ms"
    )
    print(f"enforcement pass, no change, median: {statistics.median(enforce) * 1000:.0f} ms")
    print(
        f"enforcement with runtime reconcile (GetInboundUsers), median: {statistics.median(reconcile) * 1000:.0f} ms"
    )
    print(f"first enforcement (adds all {args.users} users at runtime): {first:.1f} s")
    print(f"/metrics rendering ({lines} lines), median: {statistics.median(render) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
