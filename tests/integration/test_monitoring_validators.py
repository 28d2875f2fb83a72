"""The rendered monitoring files pass the real validators: promtool, amtool and `docker compose config`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.topology import BACKEND_1, PROXY, PROXY_EMPTY, SOLO, request

from ovpn.render.bundle import Bundle
from ovpn.render.images import resolve_images
from ovpn.render.monitoring import MonitoringSpec, render_monitoring
from ovpn.render.monitoring.grafana import panel_exprs
from ovpn.render.monitoring.spec import MONITORING_SERVICES
from ovpn.render.server_bundle import render_server_bundle

pytestmark = pytest.mark.integration

IMAGES = {k: v for k, v in resolve_images("26.7.28").items() if k in MONITORING_SERVICES}
PROMTOOL_TESTS = Path(__file__).parent / "promtool"
RULES = "monitoring/prometheus/rules/ovpn-alerts.yml"
ROLES = ["vpn", "proxy"]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(
            f"{tool} is not installed (Debian: prometheus / prometheus-alertmanager; see .ci/install-tools)"
        )
    return path


def need_compose() -> None:
    need("docker")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the docker compose plugin is not installed: {probe.stderr.strip()}")


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def write(bundle: Bundle, root: Path) -> Path:
    for path, file in bundle.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
        target.chmod(file.mode)
    return root


@pytest.fixture(params=ROLES)
def host(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    role: str = request.param
    spec = MonitoringSpec(f"{role}-ru", role, IMAGES)  # type: ignore[arg-type]
    return role, write(render_monitoring(spec), tmp_path / "opt-ovpn")


# ------------------------------------------------------------------------------------------ promtool


def test_promtool_check_rules(host: tuple[str, Path]) -> None:
    promtool = need("promtool")
    _, root = host
    result = run(promtool, "check", "rules", root / RULES)
    assert "SUCCESS" in result.stdout


def test_promtool_check_config(host: tuple[str, Path]) -> None:
    """The real prometheus.yml, with rule_files pointed at where the rules were written instead of /etc."""
    promtool = need("promtool")
    _, root = host
    config = yaml.safe_load((root / "monitoring/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(root / "monitoring/prometheus/rules/*.yml")]
    checked = root / "monitoring/prometheus/prometheus.check.yml"
    checked.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run(promtool, "check", "config", checked)
    assert "1 rule files found" in result.stdout
    assert "is valid prometheus config file syntax" in result.stdout


def test_every_dashboard_expression_parses(host: tuple[str, Path], tmp_path: Path) -> None:
    """promtool parses each dashboard query as the expression of a recording rule."""
    promtool = need("promtool")
    _, root = host
    exprs: list[str] = []
    for path in sorted((root / "monitoring/grafana/dashboards").glob("*.json")):
        exprs += panel_exprs(json.loads(path.read_text()))
    assert exprs
    rules = {
        "groups": [
            {"name": "dashboards", "rules": [{"record": f"x_{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    rules_file = tmp_path / "dashboard-exprs.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = run(promtool, "check", "rules", rules_file)
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


# Hand-written `promtool test rules` files and the host each one expects the rules to be rendered for.
PROMTOOL_UNIT_TESTS = {
    "haproxy-pool.test.yml": ("proxy-ru", "proxy"),
    "haproxy-container.test.yml": ("proxy-ru", "proxy"),
    "containers-and-agent.test.yml": ("vpn-ru", "vpn"),
    "host.test.yml": ("vpn-ru", "vpn"),
    "containers.test.yml": ("vpn-ru", "vpn"),
    "agent.test.yml": ("vpn-ru", "vpn"),
    "bot.test.yml": ("vpn-ru", "vpn"),
}
# The files that test the Telegram bot's alerts, which a host renders only once its bot is set up.
NEEDS_BOT = {"bot.test.yml"}


@pytest.mark.parametrize("test_name", sorted(PROMTOOL_UNIT_TESTS))
def test_promtool_unit_tests(test_name: str, tmp_path: Path) -> None:
    promtool = need("promtool")
    name, role = PROMTOOL_UNIT_TESTS[test_name]
    spec = MonitoringSpec(name, role, IMAGES)  # type: ignore[arg-type]
    (tmp_path / "ovpn-alerts.yml").write_bytes(render_monitoring(spec)[RULES].content)
    shutil.copy(PROMTOOL_TESTS / test_name, tmp_path / test_name)
    result = run(promtool, "test", "rules", test_name, cwd=tmp_path)
    assert "SUCCESS" in result.stdout


def test_every_promtool_test_file_is_run() -> None:
    assert {p.name for p in PROMTOOL_TESTS.glob("*.test.yml")} == set(PROMTOOL_UNIT_TESTS)


# ------------------------------------------------------------------------------------------- amtool


def test_amtool_check_config(host: tuple[str, Path]) -> None:
    amtool = need("amtool")
    _, root = host
    result = run(amtool, "check-config", root / "monitoring/alertmanager/alertmanager.yml")
    assert "SUCCESS" in result.stdout
    assert "1 receivers" in result.stdout


# ---------------------------------------------------------------------------------- docker compose


def main_compose(role: str) -> dict[str, Any]:
    """A stand-in for the host's main Compose file: the services and network the monitoring file joins."""

    def service(container: str) -> dict[str, Any]:
        return {"image": "alpine:3.23.4", "container_name": container, "networks": ["ovpn-net"]}

    services = {"xray": service("ovpn-xray"), "ovpn-agent": service("ovpn-agent")}
    if role == "proxy":
        services["haproxy"] = service("ovpn-haproxy")
    return {"name": "ovpn", "services": services, "networks": {"ovpn-net": {"name": "ovpn-net"}}}


def compose_config(root: Path, role: str, env: dict[str, str]) -> dict[str, Any]:
    need_compose()
    (root / "docker-compose.yml").write_text(yaml.safe_dump(main_compose(role), sort_keys=False))
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE") and not k.startswith("COMPOSE_")}
    result = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.monitoring.yml", "config"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**clean, **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_docker_compose_accepts_the_combined_files(host: tuple[str, Path]) -> None:
    role, root = host
    config = compose_config(root, role, {})
    services = config["services"]
    expected = {"xray", "ovpn-agent", *IMAGES} | ({"haproxy"} if role == "proxy" else set())
    assert set(services) == expected
    assert config["networks"]["ovpn-net"]["name"] == "ovpn-net"
    assert all(s["networks"] == {"ovpn-net": None} for s in services.values())
    for name, image in IMAGES.items():
        assert services[name]["image"] == image
    published = {
        (name, port["host_ip"], port["published"], port["target"])
        for name, s in services.items()
        for port in s.get("ports", [])
    }
    assert published == {
        ("grafana", "127.0.0.1", "3000", 3000),
        ("ovpn-telegram-bot", "127.0.0.1", "19001", 8080),
    }
    bot_mounts = {
        (m["source"], m["target"], m.get("read_only", False))
        for m in services["ovpn-telegram-bot"]["volumes"]
    }
    assert (
        str(root / "monitoring/secrets/telegram_bot_token"),
        "/run/secrets/telegram_bot_token",
        True,
    ) in bot_mounts
    assert ("/var/run/docker.sock", "/var/run/docker.sock", False) in bot_mounts


def test_docker_compose_image_overrides_from_env(tmp_path: Path) -> None:
    root = write(render_monitoring(MonitoringSpec("vpn-ru", "vpn", IMAGES)), tmp_path)
    config = compose_config(root, "vpn", {"CADVISOR_IMAGE": "mirror.example/cadvisor:0.56.2"})
    assert config["services"]["cadvisor"]["image"] == "mirror.example/cadvisor:0.56.2"
    assert config["services"]["prometheus"]["image"] == IMAGES["prometheus"]


# ------------------------------------------------------------------- every variant the deploy renders

# The bundles `render_server_bundle` makes for the golden topology (the same cases as test_validate_bundles.py,
# which runs `promtool check config --syntax-only`, `check rules` and amtool through `config validate`).
VARIANTS = {
    "vpn-solo": SOLO,
    "backend-vpn-nl": BACKEND_1,
    "proxy-ru": PROXY,
    "proxy-no-backends": PROXY_EMPTY,
}


@pytest.mark.parametrize("case", VARIANTS)
def test_every_rendered_variant_passes_the_full_checks_and_the_rule_unit_tests(
    case: str, tmp_path: Path
) -> None:
    """Per variant (vpn, backend, proxy with and without backends): the full `promtool check config` with the
    rules it loads, `check rules`, `amtool check-config`, and every hand-written `promtool test rules` file of
    the host's role, with the host name the file was written for replaced by this host's (the bot's only if
    the bundle has the bot set up)."""
    promtool, amtool = need("promtool"), need("amtool")
    server = VARIANTS[case]
    render_request = request(server)
    bundle = render_server_bundle(render_request)
    root = write({p: f for p, f in bundle.items() if p.startswith("monitoring/")}, tmp_path / "opt-ovpn")
    prometheus = root / "monitoring/prometheus"
    config = yaml.safe_load((prometheus / "prometheus.yml").read_text())
    config["rule_files"] = [str(prometheus / "rules/*.yml")]
    (prometheus / "prometheus.check.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert (
        "1 rule files found" in run(promtool, "check", "config", prometheus / "prometheus.check.yml").stdout
    )
    assert "SUCCESS" in run(promtool, "check", "rules", root / RULES).stdout
    assert "SUCCESS" in run(amtool, "check-config", root / "monitoring/alertmanager/alertmanager.yml").stdout
    tests = [
        name
        for name, (_, role) in PROMTOOL_UNIT_TESTS.items()
        if (role == "vpn" or server.is_proxy)
        and (name not in NEEDS_BOT or render_request.telegram is not None)
    ]
    assert tests
    shutil.copy(root / RULES, tmp_path / "ovpn-alerts.yml")
    for name in tests:
        written_for, _ = PROMTOOL_UNIT_TESTS[name]
        text = (PROMTOOL_TESTS / name).read_text()
        assert written_for in text
        (tmp_path / name).write_text(text.replace(written_for, server.name))
        assert "SUCCESS" in run(promtool, "test", "rules", name, cwd=tmp_path).stdout


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    """Each rendered alert (both roles) is fired by some `promtool test rules` case and kept quiet by another."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for test_file in PROMTOOL_TESTS.glob("*.test.yml"):
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    rendered: set[str] = set()
    for name, role in (("proxy-ru", "proxy"), ("vpn-ru", "vpn")):
        rules = yaml.safe_load(render_monitoring(MonitoringSpec(name, role, IMAGES))[RULES].content)  # type: ignore[arg-type]
        rendered |= {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    assert sorted(rendered - fired) == [], "alerts no promtool case fires"
    assert sorted(rendered - quiet) == [], "alerts no promtool case keeps quiet"
