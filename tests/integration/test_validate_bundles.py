"""`config validate` runs the real validators on every golden topology, and each of them can fail."""

import json
import subprocess
from pathlib import Path

import pytest
from tests.conftest import missing_tool, tool_path
from tests.support.topology import BACKEND_1, PROXY, PROXY_EMPTY, SOLO, USERS, request

from ovpn.core.links import client_config
from ovpn.ops.files import write_bundle
from ovpn.ops.validate import validate_bundle
from ovpn.render.server_bundle import render_server_bundle

pytestmark = pytest.mark.integration
CASES = {"vpn-solo": SOLO, "backend-vpn-nl": BACKEND_1, "proxy-ru": PROXY, "proxy-no-backends": PROXY_EMPTY}


def written(case: str, tmp_path: Path) -> Path:
    out = tmp_path / case
    write_bundle(render_server_bundle(request(CASES[case])), out)
    return out


@pytest.mark.parametrize("case", CASES)
def test_every_validator_passes_on_the_golden_topologies(
    case: str, tmp_path: Path, tools_env: dict[str, str]
) -> None:
    results = validate_bundle(written(case, tmp_path), tools_env)
    for r in results:
        if r.status == "skipped":
            missing_tool(f"validator {r.name} skipped: {r.message}")
    assert [(r.name, r.status) for r in results if r.status != "passed"] == []
    expected = {"xray", "promtool config", "promtool rules", "amtool", "compose"}
    if CASES[case].is_proxy:
        expected.add("haproxy")
    assert {r.name for r in results} == expected


def _tamper(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("validator", "file", "old", "new"),
    [
        ("xray", "xray/config.json", '"geosite:ru-available-only-inside"', '"geosite:no-such-category"'),
        ("xray", "xray/config.json", '"decryption": "none"', '"decryption": ""'),
        ("haproxy", "haproxy/haproxy.cfg", " check backup", " chek backup"),
        ("promtool rules", "monitoring/prometheus/rules/ovpn-alerts.yml", "expr: ", "expr: sum by ( "),
        (
            "amtool",
            "monitoring/alertmanager/alertmanager.yml",
            "receiver: ovpn-telegram-bot",
            "receiver: nobody",
        ),
        ("compose", "docker-compose.yml", "ovpn-agent:\n", "ovpn-agent:\n    bogus_key: 1\n"),
    ],
)
def test_each_validator_reports_a_broken_file(
    validator: str, file: str, old: str, new: str, tmp_path: Path, tools_env: dict[str, str]
) -> None:
    out = written("proxy-ru", tmp_path)
    _tamper(out / file, old, new)
    results = {r.name: r for r in validate_bundle(out, tools_env)}
    if results[validator].status == "skipped":
        missing_tool(f"validator {validator} skipped: {results[validator].message}")
    assert results[validator].status == "failed", results[validator]
    assert results[validator].message


def test_the_client_config_is_accepted_by_real_xray(tmp_path: Path, xray_binary: Path) -> None:
    config = tmp_path / "client.json"
    config.write_text(json.dumps(client_config(PROXY, USERS[0])))
    result = subprocess.run(
        [str(xray_binary), "run", "-test", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration OK" in result.stdout


@pytest.mark.parametrize("case", ["proxy-ru", "proxy-no-backends"])
def test_haproxy_3_accepts_the_rendered_configs(case: str, tmp_path: Path, tools_env: dict[str, str]) -> None:
    out = written(case, tmp_path)
    env = {**tools_env, "OVPN_HAPROXY_BIN": str(tool_path("haproxy3"))}
    (result,) = [r for r in validate_bundle(out, env) if r.name == "haproxy"]
    assert result.status == "passed", result.message
    _tamper(out / "haproxy/haproxy.cfg", "timeout tunnel 1h", "timeout tunel 1h")
    (result,) = [r for r in validate_bundle(out, env) if r.name == "haproxy"]
    assert result.status == "failed" and "tunel" in result.message
