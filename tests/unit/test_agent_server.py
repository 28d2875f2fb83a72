"""The agent's HTTP server bounds what slow clients can hold: a fixed number of handler threads, and a total time
for each request. The real agent and its server run in this process (Xray's API is unreachable: the health
endpoint still answers, which is all these tests need)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.procs import wait_until
from tests.support.waiting import LOOPBACK, free_port

from ovpn.agent.http_api import AgentServer, serve
from ovpn.agent.service import Agent

WORKERS = 4
REQUEST_SECONDS = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AgentServer]:
    agent = Agent((LOOPBACK, free_port()), tmp_path / "agent", "token", poll_interval=3600, api_timeout=0.5)
    server = serve(agent, (LOOPBACK, free_port()), workers=WORKERS, request_seconds=REQUEST_SECONDS)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        agent.stop()


def connect(server: AgentServer) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, server.server_address[1]), timeout=10)
    sock.settimeout(10)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (on which the client sent nothing)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_connections_hold_at_most_the_workers_and_a_request_is_still_served(server: AgentServer) -> None:
    baseline = threading.active_count()
    idle = [connect(server) for _ in range(WORKERS + 1)]
    try:
        wait_until(lambda: threading.active_count() - baseline == WORKERS, timeout=5,
                 what=f"{WORKERS} handler threads (not one per connection) for {len(idle)} idle connections")  # fmt: skip
        started = time.monotonic()
        with urllib.request.urlopen(f"http://{LOOPBACK}:{server.server_address[1]}/health", timeout=30) as r:
            assert json.loads(r.read())["service"] == "ovpn-agent"
        waited = time.monotonic() - started
        # The first WORKERS idle connections time out after REQUEST_SECONDS; the request gets a freed worker.
        assert waited < 2 * REQUEST_SECONDS + 2, f"served after {waited:.1f} s"
        assert threading.active_count() - baseline <= WORKERS
        for sock in idle:
            assert closed_by_server(sock), "an idle connection was not dropped"
        assert time.monotonic() - started < 2 * REQUEST_SECONDS + 4
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: threading.active_count() <= baseline, timeout=5, what="the workers to finish")


def test_a_request_that_trickles_in_is_cut_off_at_the_deadline(server: AgentServer) -> None:
    """One byte every 0.2 s keeps every recv well inside a per-recv timeout; the total deadline still ends it."""
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: agent\r\n")
    started = time.monotonic()
    cut_off = None
    try:
        for _ in range(50):  # ten seconds of trickle at most
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                cut_off = time.monotonic() - started
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(1) == b"":
                    cut_off = time.monotonic() - started
                    break
            except TimeoutError:
                pass  # still open: the pause between two bytes
            except ConnectionResetError:
                cut_off = time.monotonic() - started
                break
    finally:
        sock.close()
    assert cut_off is not None, "the trickling request was never cut off"
    assert cut_off < REQUEST_SECONDS + 2, f"cut off after {cut_off:.1f} s"


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(server: AgentServer) -> None:
    sock = connect(server)
    try:
        sock.sendall(b"POST /users/sync HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer token\r\n"
                     b"Content-Length: 100\r\n\r\n{\"us")  # fmt: skip
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        took = time.monotonic() - started
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert b"did not arrive within" in reply
    assert took < REQUEST_SECONDS + 2, f"answered after {took:.1f} s"
