"""ovpn-agent serves health and metrics while Xray's API is unreachable, and says so (the healthy case runs
against a real Xray in tests/integration/test_agent_xray.py)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def start_agent(tmp_path: Path, api_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovpn.agent.main", "--listen", f"127.0.0.1:{port}",
         "--xray-api", f"127.0.0.1:{api_port}", "--db-path", str(tmp_path / "db")],
        env={**os.environ, "OVPN_AGENT_TOKEN": "t"}, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            get(base + "/metrics")
            return proc, base
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("agent did not start")


def test_health_is_degraded_but_served_while_xray_is_unreachable(tmp_path: Path) -> None:
    proc, base = start_agent(tmp_path, free_port())
    try:
        health = json.loads(get(base + "/health"))
        assert health["status"] == "degraded" and health["xray_api"]["up"] is False
        assert "ovpn_agent_xray_api_up 0\n" in get(base + "/metrics").decode()
        assert (tmp_path / "db").is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
