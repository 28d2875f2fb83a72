"""The README's first command, through the launcher: the seed's topology rendered and validated."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import missing_tool

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_ovpn_demo_builds_renders_and_validates_the_seed_topology(
    tmp_path: Path, tools_env: dict[str, str]
) -> None:
    env = {k: v for k, v in tools_env.items() if not k.startswith("OVPN_")}
    result = subprocess.run(
        [str(ROOT / "ovpn"), "demo", "--dir", str(tmp_path / "demo"), "--json"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert set(report["bundles"]) == {"vpn-nl", "vpn-de", "proxy-ru"}
    for server, results in report["validation"].items():
        for r in results:
            if r["status"] == "skipped":
                missing_tool(f"{server}: validator {r['name']} skipped: {r['message']}")
        assert {r["status"] for r in results} == {"passed"}, (server, results)
    assert {r["name"] for r in report["validation"]["proxy-ru"]} >= {"xray", "haproxy", "compose"}
    routes = {r["destination"]: r["outbound"] for r in report["routes"]}
    assert routes == {
        "sberbank.com": "direct", "mail.ru": "direct", "example.com": "foreign-pool",
        "77.88.55.88": "direct", "192.168.1.1": "direct", "1.1.1.1": "foreign-pool",
    }  # fmt: skip
    assert report["link"].startswith("vless://") and "@proxy-ru.example.net:443?" in report["link"]
    assert not os.path.exists(Path.home() / ".ovpn" / "demo-geodata")
