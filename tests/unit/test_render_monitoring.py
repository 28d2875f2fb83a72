"""The monitoring bundle: which files, what they say, and that every query reads a metric that exists."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.topology import SOLO, request

from ovpn.core.model import TelegramSettings
from ovpn.errors import OvpnError
from ovpn.render.bundle import Bundle
from ovpn.render.images import resolve_images
from ovpn.render.monitoring import MonitoringSpec, render_monitoring
from ovpn.render.monitoring.grafana import panel_exprs
from ovpn.render.monitoring.spec import MONITORING_SERVICES, WEBHOOK_TOKEN_FILE, WEBHOOK_TOKEN_GID
from ovpn.render.server_bundle import render_server_bundle

IMAGES = {k: v for k, v in resolve_images("26.7.28").items() if k in MONITORING_SERVICES}
IMAGE_VARIABLES = {
    "prometheus": "PROMETHEUS_IMAGE",
    "alertmanager": "ALERTMANAGER_IMAGE",
    "grafana": "GRAFANA_IMAGE",
    "node-exporter": "NODE_EXPORTER_IMAGE",
    "cadvisor": "CADVISOR_IMAGE",
    "ovpn-telegram-bot": "OVPN_TELEGRAM_BOT_IMAGE",
}
COMMON_FILES = {
    "docker-compose.monitoring.yml",
    "monitoring/prometheus/prometheus.yml",
    "monitoring/prometheus/rules/ovpn-alerts.yml",
    "monitoring/alertmanager/alertmanager.yml",
    "monitoring/grafana/provisioning/datasources/prometheus.yml",
    "monitoring/grafana/provisioning/dashboards/dashboards.yml",
    "monitoring/grafana/dashboards/ovpn-host.json",
    "monitoring/grafana/dashboards/ovpn-containers.json",
    "monitoring/grafana/dashboards/ovpn-agent.json",
    "monitoring/grafana/dashboards/ovpn-users.json",
    "monitoring/secrets/telegram_bot_token",
    "monitoring/secrets/bot_webhook_token",
}
PROXY_ONLY_FILES = {"monitoring/grafana/dashboards/ovpn-proxy.json"}
DASHBOARD_TITLES = {
    "ovpn-host.json": ("ovpn-host", "ovpn Host Overview"),
    "ovpn-containers.json": ("ovpn-containers", "ovpn Containers Overview"),
    "ovpn-agent.json": ("ovpn-agent", "ovpn Agent Overview"),
    "ovpn-users.json": ("ovpn-users", "ovpn User Statistics"),
    "ovpn-proxy.json": ("ovpn-proxy", "ovpn Proxy HA Overview"),
}
WEBHOOK_TOKEN = "rendered-webhook-token-0123456789"
ALLOWLIST = Path(__file__).parent / "data" / "monitoring-metrics.txt"


def spec(role: str = "proxy", name: str | None = None) -> MonitoringSpec:
    return MonitoringSpec(f"{role}-ru" if name is None else name, role, IMAGES)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def vpn() -> Bundle:
    return render_monitoring(spec("vpn"))


@pytest.fixture(scope="module")
def proxy() -> Bundle:
    return render_monitoring(spec("proxy"))


def load(bundle: Bundle, path: str) -> Any:
    content = bundle[path].content
    return json.loads(content) if path.endswith(".json") else yaml.safe_load(content)


def alerts(bundle: Bundle) -> dict[str, dict[str, Any]]:
    rules = load(bundle, "monitoring/prometheus/rules/ovpn-alerts.yml")
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}


def dashboards(bundle: Bundle) -> dict[str, dict[str, Any]]:
    prefix = "monitoring/grafana/dashboards/"
    return {path[len(prefix) :]: load(bundle, path) for path in bundle if path.startswith(prefix)}


# ------------------------------------------------------------------------------------------- the bundle


def test_files_per_role(vpn: Bundle, proxy: Bundle) -> None:
    assert set(vpn) == COMMON_FILES
    assert set(proxy) == COMMON_FILES | PROXY_ONLY_FILES


@pytest.mark.parametrize("role", ["vpn", "proxy"])
def test_rendering_is_deterministic(role: str) -> None:
    first, second = render_monitoring(spec(role)), render_monitoring(spec(role))
    assert first == second
    assert all(first[path].content == second[path].content for path in first)


def test_token_file_is_empty_and_private(proxy: Bundle) -> None:
    token = proxy["monitoring/secrets/telegram_bot_token"]
    assert token.content == b""
    assert token.mode == 0o600
    assert all(f.mode == 0o644 for path, f in proxy.items() if not path.startswith("monitoring/secrets/"))


def test_webhook_token_file_holds_the_token_for_root_and_alertmanager_only() -> None:
    bundle = render_monitoring(dataclasses.replace(spec("vpn"), webhook_token=WEBHOOK_TOKEN))
    file = bundle[WEBHOOK_TOKEN_FILE]
    assert file.content == WEBHOOK_TOKEN.encode()
    # Not world-readable; its group is one only Alertmanager's container joins (the bot runs as root).
    assert (file.mode, file.group) == (0o640, WEBHOOK_TOKEN_GID)
    services = load(bundle, "docker-compose.monitoring.yml")["services"]
    assert [name for name, s in services.items() if str(WEBHOOK_TOKEN_GID) in s.get("group_add", [])] == [
        "alertmanager"
    ]
    # The token is in that file only, and the spec does not show it.
    assert [path for path, f in bundle.items() if WEBHOOK_TOKEN.encode() in f.content] == [WEBHOOK_TOKEN_FILE]
    assert WEBHOOK_TOKEN not in repr(dataclasses.replace(spec("vpn"), webhook_token=WEBHOOK_TOKEN))


def test_a_server_bundle_with_a_bot_carries_its_webhook_token() -> None:
    with_bot = dataclasses.replace(request(SOLO), telegram=TelegramSettings(42))
    with pytest.raises(OvpnError, match="has a Telegram bot but no webhook token"):
        render_server_bundle(with_bot)
    bundle = render_server_bundle(dataclasses.replace(with_bot, bot_webhook_token=WEBHOOK_TOKEN))
    assert [path for path, f in bundle.items() if WEBHOOK_TOKEN.encode() in f.content] == [WEBHOOK_TOKEN_FILE]
    # Without a bot the file is empty (the bot does not run), whatever token is given.
    without = render_server_bundle(dataclasses.replace(request(SOLO), bot_webhook_token=WEBHOOK_TOKEN))
    assert without[WEBHOOK_TOKEN_FILE].content == b""


@pytest.mark.parametrize("token", ["short", "has a space in it, long enough", "x" * 16 + "\n", "ü" * 20])
def test_malformed_webhook_tokens_are_refused(token: str) -> None:
    with pytest.raises(OvpnError, match="webhook token of vpn-ru is malformed") as refused:
        render_monitoring(dataclasses.replace(spec("vpn"), webhook_token=token))
    assert token not in str(refused.value) + refused.value.hint


def test_json_files_are_canonical(proxy: Bundle) -> None:
    for path, file in proxy.items():
        if path.endswith(".json"):
            assert (
                file.content
                == (json.dumps(json.loads(file.content), indent=2, sort_keys=True) + "\n").encode()
            )


def test_other_servers_render_other_names() -> None:
    bundle = render_monitoring(spec("vpn", "vpn-de-2"))
    assert load(bundle, "monitoring/prometheus/prometheus.yml")["global"]["external_labels"] == {
        "server": "vpn-de-2",
        "role": "vpn",
    }
    assert all("vpn-de-2" in rule["annotations"]["summary"] for rule in alerts(bundle).values())


@pytest.mark.parametrize("name", ["", "Proxy", "proxy_ru", "-proxy", "proxy ru", "a" * 64, "x$y"])
def test_unsafe_server_names_are_refused(name: str) -> None:
    with pytest.raises(OvpnError, match="server name"):
        render_monitoring(spec("vpn", name))


def test_missing_or_unsafe_images_are_refused() -> None:
    images = dict(IMAGES)
    del images["cadvisor"]
    with pytest.raises(OvpnError, match="cadvisor"):
        render_monitoring(MonitoringSpec("vpn-1", "vpn", images))
    with pytest.raises(OvpnError, match="image reference"):
        render_monitoring(MonitoringSpec("vpn-1", "vpn", {**IMAGES, "grafana": "grafana:${EVIL}"}))


# ----------------------------------------------------------------------------------------------- compose


def test_compose_services_images_and_network(proxy: Bundle) -> None:
    compose = load(proxy, "docker-compose.monitoring.yml")
    assert list(compose["services"]) == list(IMAGES)
    for name, service in compose["services"].items():
        assert service["image"] == f"${{{IMAGE_VARIABLES[name]}:-{IMAGES[name]}}}"
        assert "pull_policy" not in service
        assert service["networks"] == ["ovpn-net"]
        assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}
        assert service["restart"] == "unless-stopped"
    assert compose["networks"] == {"ovpn-net": {"name": "ovpn-net", "external": False}}
    assert b"&id" not in proxy["docker-compose.monitoring.yml"].content  # no YAML anchors


def test_compose_publishes_only_on_loopback(proxy: Bundle) -> None:
    services = load(proxy, "docker-compose.monitoring.yml")["services"]
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"grafana": ["127.0.0.1:3000:3000"], "ovpn-telegram-bot": ["127.0.0.1:19001:8080"]}
    assert not any(s.get("network_mode") == "host" for s in services.values())


def test_compose_volumes_and_bot_mounts(proxy: Bundle) -> None:
    compose = load(proxy, "docker-compose.monitoring.yml")
    services = compose["services"]
    assert set(compose["volumes"]) == {"ovpn-prometheus-data", "ovpn-alertmanager-data", "ovpn-grafana-data"}
    assert "ovpn-prometheus-data:/prometheus" in services["prometheus"]["volumes"]
    assert "ovpn-alertmanager-data:/alertmanager" in services["alertmanager"]["volumes"]
    assert "ovpn-grafana-data:/var/lib/grafana" in services["grafana"]["volumes"]
    bot = services["ovpn-telegram-bot"]
    assert "./monitoring/secrets/telegram_bot_token:/run/secrets/telegram_bot_token:ro" in bot["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in bot["volumes"]
    assert bot["environment"]["OVPN_TELEGRAM_TOKEN_FILE"] == "/run/secrets/telegram_bot_token"
    # The webhook token: the bot checks it, Alertmanager sends it (alertmanager.yml names this mount).
    assert "./monitoring/secrets/bot_webhook_token:/run/secrets/bot_webhook_token:ro" in bot["volumes"]
    assert bot["environment"]["OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE"] == "/run/secrets/bot_webhook_token"
    assert (
        "./monitoring/secrets/bot_webhook_token:/etc/alertmanager/secrets/bot_webhook_token:ro"
        in services["alertmanager"]["volumes"]
    )


def test_bot_sees_haproxy_only_on_proxies(vpn: Bundle, proxy: Bundle) -> None:
    def env(bundle: Bundle) -> dict[str, str]:
        return dict(
            load(bundle, "docker-compose.monitoring.yml")["services"]["ovpn-telegram-bot"]["environment"]
        )

    assert env(proxy)["OVPN_TELEGRAM_HAPROXY_URL"] == "http://haproxy:8404/metrics"
    assert "haproxy=ovpn-haproxy" in env(proxy)["OVPN_TELEGRAM_SERVICES"].split(",")
    assert env(vpn)["OVPN_TELEGRAM_HAPROXY_URL"] == ""
    assert "haproxy" not in env(vpn)["OVPN_TELEGRAM_SERVICES"]
    assert env(proxy)["OVPN_TELEGRAM_SERVER_NAME"] == "proxy-ru"


# -------------------------------------------------------------------------------------------- prometheus


def test_prometheus_scrape_jobs(vpn: Bundle, proxy: Bundle) -> None:
    def jobs(bundle: Bundle) -> dict[str, tuple[str, str]]:
        config = load(bundle, "monitoring/prometheus/prometheus.yml")
        return {
            job["job_name"]: (job["static_configs"][0]["targets"][0], job.get("metrics_path", "/metrics"))
            for job in config["scrape_configs"]
        }

    expected = {
        "prometheus": ("localhost:9090", "/metrics"),
        "alertmanager": ("alertmanager:9093", "/metrics"),
        "node-exporter": ("node-exporter:9100", "/metrics"),
        "cadvisor": ("cadvisor:8080", "/metrics"),
        "ovpn-agent": ("ovpn-agent:9090", "/metrics"),
        "ovpn-telegram-bot": ("ovpn-telegram-bot:8080", "/metrics"),
    }
    assert jobs(vpn) == expected
    assert jobs(proxy) == {**expected, "haproxy": ("haproxy:8404", "/metrics")}


def test_a_server_without_a_bot_neither_scrapes_nor_alerts_on_it() -> None:
    bundle = render_monitoring(MonitoringSpec("vpn-nl", "vpn", IMAGES, bot_enabled=False))
    jobs = {job["job_name"] for job in load(bundle, "monitoring/prometheus/prometheus.yml")["scrape_configs"]}
    assert "ovpn-telegram-bot" not in jobs and "ovpn-agent" in jobs
    names = set(alerts(bundle))
    assert not {n for n in names if "Telegram" in n} and "OvpnAgentDown" in names
    assert {n for n in alerts(render_monitoring(spec("vpn"))) if "Telegram" in n} == {
        "OvpnTelegramBotDown", "OvpnTelegramApiUnreachable", "OvpnTelegramBotMisconfigured",
    }  # fmt: skip


def test_prometheus_globals(proxy: Bundle) -> None:
    config = load(proxy, "monitoring/prometheus/prometheus.yml")
    assert config["global"]["external_labels"] == {"server": "proxy-ru", "role": "proxy"}
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_haproxy_server_label_cannot_clash_with_the_host_label(proxy: Bundle) -> None:
    config = load(proxy, "monitoring/prometheus/prometheus.yml")
    (haproxy,) = [job for job in config["scrape_configs"] if job["job_name"] == "haproxy"]
    rename, drop = haproxy["metric_relabel_configs"]
    assert (rename["source_labels"], rename["target_label"]) == (["server"], "backend")
    assert drop == {"regex": "server", "action": "labeldrop"}


# ------------------------------------------------------------------------------------------------ alerts


def test_alert_groups_per_role(vpn: Bundle, proxy: Bundle) -> None:
    def groups(bundle: Bundle) -> list[str]:
        return [g["name"] for g in load(bundle, "monitoring/prometheus/rules/ovpn-alerts.yml")["groups"]]

    common = ["host", "containers", "agent", "certificate", "bot"]
    assert groups(vpn) == common
    assert groups(proxy) == [*common, "haproxy-pool", "haproxy-container"]


def test_named_alerts_exist(vpn: Bundle, proxy: Bundle) -> None:
    proxy_only = {
        "OvpnProxyPoolDown",
        "OvpnProxyBackendDown",
        "OvpnProxyBackendFlapping",
        "OvpnHaproxyScrapeDown",
        "OvpnHaproxyContainerMissing",
        "OvpnHaproxyContainerRestarting",
        "OvpnHaproxyHighCpu",
    }
    everywhere = {
        "OvpnNodeExporterDown",
        "OvpnContainerMissing",
        "OvpnContainerRestarting",
        "OvpnContainerHighCpu",
        "OvpnAgentDown",
        "OvpnXrayApiDown",
        "OvpnAgentCollectorStale",
        "OvpnCertExpirySoon",
        "OvpnCertUnreadable",
        "OvpnTelegramBotDown",
        "OvpnTelegramApiUnreachable",
        "OvpnTelegramBotMisconfigured",
    }
    assert everywhere <= set(alerts(vpn))
    assert not proxy_only & set(alerts(vpn))
    assert everywhere | proxy_only <= set(alerts(proxy))
    assert not any("haproxy" in rule["expr"] for rule in alerts(vpn).values())


def test_every_alert_has_severity_and_names_the_server(proxy: Bundle) -> None:
    for name, rule in alerts(proxy).items():
        assert name.startswith("Ovpn")
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert "proxy-ru" in rule["annotations"]["summary"], name
        assert "proxy-ru" in rule["annotations"]["description"], name


def test_pool_alert_expressions(proxy: Bundle) -> None:
    rules = alerts(proxy)
    pool = rules["OvpnProxyPoolDown"]
    assert pool["labels"]["severity"] == "critical"
    assert pool["expr"] == (
        'haproxy_backend_active_servers{proxy="foreign_backends"}'
        ' + haproxy_backend_backup_servers{proxy="foreign_backends"} == 0'
    )
    down = rules["OvpnProxyBackendDown"]["expr"]
    assert 'state="UP"' in down and "MAINT" in down and "unless" in down
    assert "haproxy_server_check_up_down_total" in rules["OvpnProxyBackendFlapping"]["expr"]
    assert rules["OvpnProxyBackendFlapping"]["expr"].endswith("[15m]) >= 3")
    assert rules["OvpnHaproxyScrapeDown"]["expr"] == 'up{job="haproxy"} == 0'
    for name in ("OvpnHaproxyContainerMissing", "OvpnHaproxyContainerRestarting", "OvpnHaproxyHighCpu"):
        assert 'name="ovpn-haproxy"' in rules[name]["expr"]


def test_container_alerts_watch_named_containers(vpn: Bundle) -> None:
    rules = alerts(vpn)
    missing = rules["OvpnContainerMissing"]["expr"]
    assert 'container_last_seen{name="ovpn-xray"}' in missing
    assert 'container_last_seen{name="ovpn-agent"}' in missing
    # Restarts are counter resets of the container's CPU: its start time is its creation time, which a restart
    # does not change.
    assert "resets(container_cpu_usage_seconds_total{" in rules["OvpnContainerRestarting"]["expr"]
    assert "container_start_time_seconds" not in rules["OvpnContainerRestarting"]["expr"]
    assert "container_cpu_usage_seconds_total" in rules["OvpnContainerHighCpu"]["expr"]


def test_agent_bot_and_certificate_alerts(vpn: Bundle) -> None:
    rules = alerts(vpn)
    assert rules["OvpnAgentDown"]["expr"] == 'up{job="ovpn-agent"} == 0'
    assert rules["OvpnXrayApiDown"]["expr"] == "ovpn_agent_xray_api_up == 0"
    assert "ovpn_agent_collector_last_success_timestamp_seconds" in rules["OvpnAgentCollectorStale"]["expr"]
    assert "ovpn_agent_cert_expiry_timestamp_seconds" in rules["OvpnCertExpirySoon"]["expr"]
    assert rules["OvpnCertUnreadable"]["expr"] == "ovpn_agent_cert_check_failing == 1"
    assert rules["OvpnTelegramBotDown"]["expr"] == 'up{job="ovpn-telegram-bot"} == 0'
    assert rules["OvpnTelegramApiUnreachable"]["expr"] == "ovpn_bot_telegram_reachable == 0"
    assert rules["OvpnTelegramBotMisconfigured"]["expr"] == "ovpn_bot_configured == 0"


# ------------------------------------------------------------------------------------------ alertmanager


def test_alertmanager_route_and_receiver(proxy: Bundle) -> None:
    config = load(proxy, "monitoring/alertmanager/alertmanager.yml")
    route = config["route"]
    assert route["receiver"] == "ovpn-telegram-bot"
    assert route["group_by"] == ["alertname", "server"]
    (critical,) = route["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert _seconds(critical["repeat_interval"]) < _seconds(route["repeat_interval"])
    (receiver,) = config["receivers"]
    assert receiver["name"] == "ovpn-telegram-bot"
    assert receiver["webhook_configs"] == [
        {
            "url": "http://ovpn-telegram-bot:8080/alertmanager",
            "send_resolved": True,
            "max_alerts": 0,
            "http_config": {
                "authorization": {
                    "type": "Bearer",
                    "credentials_file": "/etc/alertmanager/secrets/bot_webhook_token",
                }
            },
        }
    ]


def test_pool_down_inhibits_backend_down(proxy: Bundle) -> None:
    rules = load(proxy, "monitoring/alertmanager/alertmanager.yml")["inhibit_rules"]
    (pool,) = [r for r in rules if r["source_matchers"] == ['alertname="OvpnProxyPoolDown"']]
    assert "OvpnProxyBackendDown" in pool["target_matchers"][0]
    assert pool["equal"] == ["server"]


def test_inhibit_rules_name_real_alerts(proxy: Bundle) -> None:
    names = set(alerts(proxy))
    for rule in load(proxy, "monitoring/alertmanager/alertmanager.yml")["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            value = matcher.split("=", 1)[1].lstrip("~").strip('"')
            assert set(value.split("|")) <= names, matcher


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


# ----------------------------------------------------------------------------------------------- grafana


def test_grafana_provisioning(proxy: Bundle) -> None:
    (source,) = load(proxy, "monitoring/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    (provider,) = load(proxy, "monitoring/grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert provider["folder"] == "ovpn"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_titles_and_uids(vpn: Bundle, proxy: Bundle) -> None:
    for bundle in (vpn, proxy):
        for name, dashboard in dashboards(bundle).items():
            assert (dashboard["uid"], dashboard["title"]) == DASHBOARD_TITLES[name]
    assert "ovpn-proxy.json" not in dashboards(vpn)


def test_dashboard_layout_is_a_valid_grid(proxy: Bundle) -> None:
    for name, dashboard in dashboards(proxy).items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
            assert not cells & taken, (name, panel["title"])
            taken |= cells
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}


def test_proxy_dashboard_shows_the_pool(proxy: Bundle) -> None:
    dashboard = dashboards(proxy)["ovpn-proxy.json"]
    exprs = "\n".join(panel_exprs(dashboard))
    assert 'up{job="haproxy"}' in exprs
    for metric in (
        "haproxy_server_status",
        "haproxy_server_check_up_down_total",
        "haproxy_backend_sessions_total",
        "haproxy_server_sessions_total",
        'container_cpu_usage_seconds_total{name="ovpn-haproxy"}',
        'container_memory_working_set_bytes{name="ovpn-haproxy"}',
    ):
        assert metric in exprs, metric
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Healthy backends", "Down backends", "State changes (15m)", "Failover events (24h)"} <= titles


def test_users_dashboard_reads_per_user_metrics(proxy: Bundle) -> None:
    dashboard = dashboards(proxy)["ovpn-users.json"]
    exprs = "\n".join(panel_exprs(dashboard))
    assert 'ovpn_agent_user_traffic_bytes_total{email=~"$user"}' in exprs
    assert 'ovpn_agent_user_quota_usage_ratio{email=~"$user"}' in exprs
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "user"
    assert variable["definition"] == "label_values(ovpn_agent_user_traffic_bytes_total, email)"


def test_vpn_dashboards_do_not_mention_haproxy(vpn: Bundle) -> None:
    for name, dashboard in dashboards(vpn).items():
        assert "haproxy" not in json.dumps(dashboard), name


# ------------------------------------------------------------------------------- metric names are real

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_WORD = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("{}", expr)
    expr = _GROUPING.sub("", expr)
    expr = _RANGE.sub("", expr)
    names = set()
    for match in _WORD.finditer(expr):
        word, is_call = match.group(1), match.group(2)
        if not is_call and word not in _KEYWORDS:
            names.add(word)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (name) (rate(container_cpu_usage_seconds_total{name=~"ovpn-.*",x="a{b}"}[5m])) * 100 / '
        'scalar(count(node_cpu_seconds_total{mode="idle"})) > 1e3 and on(instance) up{job="x"} == 0 '
        "or vector(0) unless max without (state) (haproxy_server_status)"
    )
    assert metric_names(expr) == {
        "container_cpu_usage_seconds_total",
        "node_cpu_seconds_total",
        "up",
        "haproxy_server_status",
    }


def allowlist() -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in ALLOWLIST.read_text().splitlines())
    return {line for line in lines if line}


def all_exprs(bundle: Bundle) -> list[str]:
    exprs = [rule["expr"] for rule in alerts(bundle).values()]
    for dashboard in dashboards(bundle).values():
        exprs += panel_exprs(dashboard)
    return exprs


@pytest.mark.parametrize("role", ["vpn", "proxy"])
def test_every_queried_metric_is_exported(role: str) -> None:
    bundle = render_monitoring(spec(role))
    known = allowlist()
    for expr in all_exprs(bundle):
        unknown = metric_names(expr) - known
        assert not unknown, f"{sorted(unknown)} in {expr}"


def test_allowlist_has_no_unused_names(proxy: Bundle) -> None:
    used = set().union(*(metric_names(expr) for expr in all_exprs(proxy)))
    assert allowlist() - used == set()


def test_retired_haproxy_exporter_names_are_not_used(proxy: Bundle) -> None:
    for expr in all_exprs(proxy):
        assert not metric_names(expr) & {"haproxy_server_up", "haproxy_backend_up", "haproxy_up"}
