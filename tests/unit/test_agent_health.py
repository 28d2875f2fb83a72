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

from tests.support.certs import make_cert, utc
from tests.support.exposition import sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def start_agent(
    tmp_path: Path, api_port: int, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovpn.agent.main", "--listen", f"127.0.0.1:{port}",
         "--xray-api", f"127.0.0.1:{api_port}", "--db-path", str(tmp_path / "db"), *extra],
        env={**os.environ, "OVPN_AGENT_TOKEN": "t", **(env or {})}, stderr=subprocess.PIPE,
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
        assert sample(get(base + "/metrics").decode(), "ovpn_agent_xray_api_up") == 0
        assert (tmp_path / "db").is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cert_file_option_and_environment(tmp_path: Path) -> None:
    """--cert-file (or OVPN_AGENT_CERT_FILE) reaches the check: the expiry is in /metrics and /health; /dev/null
    (what Compose mounts when no certificate is named) reads as not configured."""
    cert = tmp_path / "fullchain.pem"
    cert.write_bytes(make_cert(utc(2025, 1, 1), utc(2026, 2, 3)))
    runs = [((f"--cert-file={cert}",), {}), ((), {"OVPN_AGENT_CERT_FILE": str(cert)}),
            (("--cert-file", "/dev/null"), {})]  # fmt: skip
    for index, (extra, env) in enumerate(runs):
        proc, base = start_agent(tmp_path / str(index), free_port(), *extra, env=env)
        try:
            metrics = get(base + "/metrics").decode()
            certificate = json.loads(get(base + "/health"))["certificate"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        if index < 2:
            assert sample(metrics, "ovpn_agent_cert_expiry_timestamp_seconds") == utc(2026, 2, 3).timestamp()
            assert certificate["not_after"] == "2026-02-03T00:00:00Z" and certificate["path"] == str(cert)
        else:
            assert sample(metrics, "ovpn_agent_cert_expiry_timestamp_seconds") == 0
            assert sample(metrics, 'ovpn_agent_cert_checks_total{result="not_configured"}') == 1
            assert certificate == {"path": "/dev/null", "result": "not_configured", "not_before": None,
                                   "not_after": None, "error": None}  # fmt: skip
