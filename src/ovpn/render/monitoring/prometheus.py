"""`monitoring/prometheus/prometheus.yml`: scrape jobs, rule files and the Alertmanager target.

Every series and alert carries `server=<host name>` and `role=<vpn|proxy>` as external labels, so alerts from
a fleet are told apart in one chat. HAProxy's exporter names the backend server in a label called `server`
too; on the `haproxy` job that label is renamed to `backend` at scrape time so the two never collide (an alert
on a dead backend keeps `server=<proxy host>`, which grouping and inhibition rely on).
"""

from __future__ import annotations

from typing import Any

from ovpn.core.names import (
    AGENT_PORT,
    ALERTMANAGER_PORT,
    BOT_PORT,
    CADVISOR_PORT,
    HAPROXY_METRICS_PORT,
    NODE_EXPORTER_PORT,
    PROMETHEUS_PORT,
)
from ovpn.render.monitoring.spec import (
    JOB_AGENT,
    JOB_ALERTMANAGER,
    JOB_BOT,
    JOB_CADVISOR,
    JOB_HAPROXY,
    JOB_NODE_EXPORTER,
    JOB_PROMETHEUS,
    MonitoringSpec,
)

SCRAPE_INTERVAL = "30s"
RULES_GLOB = "/etc/prometheus/rules/*.yml"
# The HAProxy exporter's own label that names a backend server, and what it is renamed to.
HAPROXY_SERVER_LABEL = "server"
BACKEND_LABEL = "backend"


def _job(name: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"job_name": name, **extra, "static_configs": [{"targets": [target]}]}


def scrape_jobs(spec: MonitoringSpec) -> list[dict[str, Any]]:
    jobs = [
        _job(JOB_PROMETHEUS, f"localhost:{PROMETHEUS_PORT}"),
        _job(JOB_ALERTMANAGER, f"alertmanager:{ALERTMANAGER_PORT}"),
        _job(JOB_NODE_EXPORTER, f"node-exporter:{NODE_EXPORTER_PORT}"),
        _job(JOB_CADVISOR, f"cadvisor:{CADVISOR_PORT}"),
        _job(JOB_AGENT, f"ovpn-agent:{AGENT_PORT}", metrics_path="/metrics"),
    ]
    if spec.bot_enabled:
        jobs.append(_job(JOB_BOT, f"ovpn-telegram-bot:{BOT_PORT}", metrics_path="/metrics"))
    if spec.is_proxy:
        jobs.append(
            _job(
                JOB_HAPROXY,
                f"haproxy:{HAPROXY_METRICS_PORT}",
                metrics_path="/metrics",
                metric_relabel_configs=[
                    {
                        "source_labels": [HAPROXY_SERVER_LABEL],
                        "regex": "(.+)",
                        "target_label": BACKEND_LABEL,
                        "replacement": "$1",
                        "action": "replace",
                    },
                    {"regex": HAPROXY_SERVER_LABEL, "action": "labeldrop"},
                ],
            )
        )
    return jobs


def prometheus_document(spec: MonitoringSpec) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "10s",
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"server": spec.server_name, "role": spec.role},
        },
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"alertmanager:{ALERTMANAGER_PORT}"]}]}]
        },
        "rule_files": [RULES_GLOB],
        "scrape_configs": scrape_jobs(spec),
    }
