"""Assemble the monitoring part of a host's bundle: paths under /opt/ovpn -> bytes and modes."""

from __future__ import annotations

import json
from typing import Any

import yaml

from ovpn.core.names import BOT_TOKEN_FILE, PROMETHEUS_PORT
from ovpn.render.bundle import Bundle, BundleFile
from ovpn.render.monitoring.alertmanager import alertmanager_document
from ovpn.render.monitoring.alerts import rules_document
from ovpn.render.monitoring.compose import compose_document
from ovpn.render.monitoring.dashboards import dashboards
from ovpn.render.monitoring.prometheus import SCRAPE_INTERVAL, prometheus_document
from ovpn.render.monitoring.spec import (
    DATASOURCE_UID,
    WEBHOOK_TOKEN_FILE,
    WEBHOOK_TOKEN_GID,
    MonitoringSpec,
    check_spec,
)

COMPOSE_FILE = "docker-compose.monitoring.yml"
PROMETHEUS_CONFIG = "monitoring/prometheus/prometheus.yml"
ALERT_RULES = "monitoring/prometheus/rules/ovpn-alerts.yml"
ALERTMANAGER_CONFIG = "monitoring/alertmanager/alertmanager.yml"
GRAFANA_DATASOURCE = "monitoring/grafana/provisioning/datasources/prometheus.yml"
GRAFANA_PROVIDER = "monitoring/grafana/provisioning/dashboards/dashboards.yml"
DASHBOARD_DIR = "monitoring/grafana/dashboards"
DASHBOARD_MOUNT = "/var/lib/grafana/dashboards"


def _yaml(spec: MonitoringSpec, document: dict[str, Any]) -> BundleFile:
    header = f"# Rendered by ovpn for {spec.server_name} ({spec.role}); the next deploy overwrites changes.\n"
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    return BundleFile((header + body).encode())


def _json(document: dict[str, Any]) -> BundleFile:
    return BundleFile((json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def datasource_document() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://prometheus:{PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
            }
        ],
    }


def dashboard_provider_document() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "ovpn",
                "orgId": 1,
                "folder": "ovpn",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARD_MOUNT, "foldersFromFilesStructure": False},
            }
        ],
    }


def render_monitoring(spec: MonitoringSpec) -> Bundle:
    """The monitoring files of one host. Pure: the same spec gives the same bytes."""
    check_spec(spec)
    bundle: Bundle = {
        COMPOSE_FILE: _yaml(spec, compose_document(spec)),
        PROMETHEUS_CONFIG: _yaml(spec, prometheus_document(spec)),
        ALERT_RULES: _yaml(spec, rules_document(spec)),
        ALERTMANAGER_CONFIG: _yaml(spec, alertmanager_document()),
        GRAFANA_DATASOURCE: _yaml(spec, datasource_document()),
        GRAFANA_PROVIDER: _yaml(spec, dashboard_provider_document()),
    }
    for name, dashboard in dashboards(spec).items():
        bundle[f"{DASHBOARD_DIR}/{name}"] = _json(dashboard.to_json())
    # Empty in the bundle; a deploy keeps the live token that `server monitor telegram-setup` wrote.
    bundle[BOT_TOKEN_FILE] = BundleFile(b"", 0o600)
    # Deployed as rendered (never kept from the host): readable by root (the bot) and Alertmanager's group only.
    bundle[WEBHOOK_TOKEN_FILE] = BundleFile(spec.webhook_token.encode(), 0o640, WEBHOOK_TOKEN_GID)
    return bundle
