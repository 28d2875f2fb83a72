"""`docker-compose.monitoring.yml`: the optional monitoring stack, layered over the host's main Compose file.

Nothing here is reachable from outside the host: Grafana and the bot listen on loopback, every other port
stays inside the `ovpn-net` network. Images are `${VAR:-default}` so a host's `.env` can swap a registry the
host cannot reach. There is no `pull_policy`: whoever starts the stack decides whether to pull.
"""

from __future__ import annotations

from typing import Any

from ovpn.core.names import (
    AGENT_PORT,
    ALERTMANAGER_PORT,
    BOT_PORT,
    BOT_TOKEN_FILE,
    CADVISOR_PORT,
    GRAFANA_PORT,
    HAPROXY_CONTAINER,
    HAPROXY_METRICS_PORT,
    NETWORK,
    NODE_EXPORTER_PORT,
    PROMETHEUS_PORT,
    XRAY_CONTAINER,
)
from ovpn.render.compose import json_file_logging
from ovpn.render.monitoring.spec import (
    BOT_HOST_BINDING,
    GRAFANA_HOST_BINDING,
    IMAGE_VARIABLES,
    MONITORING_CONTAINERS,
    WEBHOOK_TOKEN_ALERTMANAGER_MOUNT,
    WEBHOOK_TOKEN_BOT_MOUNT,
    WEBHOOK_TOKEN_FILE,
    WEBHOOK_TOKEN_GID,
    MonitoringSpec,
)

PROMETHEUS_VOLUME = "ovpn-prometheus-data"
ALERTMANAGER_VOLUME = "ovpn-alertmanager-data"
GRAFANA_VOLUME = "ovpn-grafana-data"

# Where the bot sees its token file (a path, not a token).
TOKEN_MOUNT = "/run/secrets/telegram_bot_token"  # noqa: S105
DOCKER_SOCKET = "/var/run/docker.sock"


def _image(spec: MonitoringSpec, service: str) -> str:
    return f"${{{IMAGE_VARIABLES[service]}:-{spec.images[service]}}}"


def _http_check(url: str) -> dict[str, Any]:
    """A healthcheck for images that ship busybox `wget` (the prom/* images)."""
    return {
        "test": ["CMD", "wget", "-q", "--spider", url],
        "interval": "30s",
        "timeout": "5s",
        "retries": 3,
        "start_period": "30s",
    }


def _service(spec: MonitoringSpec, service: str, **fields: Any) -> dict[str, Any]:
    return {
        "image": _image(spec, service),
        "container_name": MONITORING_CONTAINERS[service],
        "restart": "unless-stopped",
        **fields,
        "networks": [NETWORK],
        "logging": json_file_logging(),
    }


def _bot_services(spec: MonitoringSpec) -> str:
    """Services the bot shows and may restart, as `service=container` pairs (HAProxy only on proxies)."""
    pairs = [("xray", XRAY_CONTAINER)]
    if spec.is_proxy:
        pairs.append(("haproxy", HAPROXY_CONTAINER))
    pairs.append(("ovpn-agent", "ovpn-agent"))
    pairs.extend(
        (service, MONITORING_CONTAINERS[service])
        for service in ("prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor")
    )
    return ",".join(f"{service}={container}" for service, container in pairs)


def compose_document(spec: MonitoringSpec) -> dict[str, Any]:
    prometheus = _service(
        spec,
        "prometheus",
        command=[
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=10d",
            "--storage.tsdb.retention.size=512MB",
            "--web.enable-lifecycle",
        ],
        expose=[str(PROMETHEUS_PORT)],
        volumes=[
            "./monitoring/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
            "./monitoring/prometheus/rules:/etc/prometheus/rules:ro",
            f"{PROMETHEUS_VOLUME}:/prometheus",
        ],
        healthcheck=_http_check(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/healthy"),
    )
    alertmanager = _service(
        spec,
        "alertmanager",
        command=[
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            f"--web.external-url=http://alertmanager:{ALERTMANAGER_PORT}",
            "--data.retention=168h",
        ],
        expose=[str(ALERTMANAGER_PORT)],
        # The image's user (nobody) reads the bot's webhook token through this group (see spec.py).
        group_add=[str(WEBHOOK_TOKEN_GID)],
        volumes=[
            "./monitoring/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
            f"./{WEBHOOK_TOKEN_FILE}:{WEBHOOK_TOKEN_ALERTMANAGER_MOUNT}:ro",
            f"{ALERTMANAGER_VOLUME}:/alertmanager",
        ],
        healthcheck=_http_check(f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/healthy"),
    )
    grafana = _service(
        spec,
        "grafana",
        environment={
            "GF_SECURITY_ADMIN_USER": "${GRAFANA_ADMIN_USER:-ovpn}",
            "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-change-me-now}",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
            "GF_NEWS_NEWS_FEED_ENABLED": "false",
        },
        ports=[f"{GRAFANA_HOST_BINDING}:{GRAFANA_PORT}"],
        volumes=[
            "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro",
            "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro",
            f"{GRAFANA_VOLUME}:/var/lib/grafana",
        ],
    )
    node_exporter = _service(
        spec,
        "node-exporter",
        command=[
            "--path.procfs=/host/proc",
            "--path.sysfs=/host/sys",
            "--path.rootfs=/rootfs",
        ],
        expose=[str(NODE_EXPORTER_PORT)],
        volumes=["/proc:/host/proc:ro", "/sys:/host/sys:ro", "/:/rootfs:ro,rslave"],
        healthcheck=_http_check(f"http://127.0.0.1:{NODE_EXPORTER_PORT}/metrics"),
    )
    cadvisor = _service(
        spec,
        "cadvisor",
        command=[
            "--docker_only=true",
            "--store_container_labels=false",
            "--housekeeping_interval=30s",
            "--max_housekeeping_interval=2m",
        ],
        privileged=True,
        devices=["/dev/kmsg:/dev/kmsg"],
        expose=[str(CADVISOR_PORT)],
        volumes=[
            "/:/rootfs:ro",
            "/var/run:/var/run:ro",
            "/sys:/sys:ro",
            "/var/lib/docker/:/var/lib/docker:ro",
            "/dev/disk/:/dev/disk:ro",
        ],
    )
    bot = _service(
        spec,
        "ovpn-telegram-bot",
        # The agent's image carries the bot too. Root inside the container: the bot restarts services through
        # the Docker socket, which is root-equivalent on the host anyway.
        entrypoint=["ovpn-telegram-bot"],
        user="0:0",
        environment={
            "OVPN_TELEGRAM_LISTEN": f"0.0.0.0:{BOT_PORT}",
            "OVPN_TELEGRAM_TOKEN_FILE": TOKEN_MOUNT,
            "OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE": WEBHOOK_TOKEN_BOT_MOUNT,
            "OVPN_TELEGRAM_SERVER_NAME": spec.server_name,
            "OVPN_TELEGRAM_SERVER_ROLE": spec.role,
            "OVPN_TELEGRAM_AGENT_URL": f"http://ovpn-agent:{AGENT_PORT}",
            "OVPN_TELEGRAM_PROMETHEUS_URL": f"http://prometheus:{PROMETHEUS_PORT}",
            "OVPN_TELEGRAM_ALERTMANAGER_URL": f"http://alertmanager:{ALERTMANAGER_PORT}",
            "OVPN_TELEGRAM_GRAFANA_URL": f"http://grafana:{GRAFANA_PORT}",
            "OVPN_TELEGRAM_NODE_EXPORTER_URL": f"http://node-exporter:{NODE_EXPORTER_PORT}",
            "OVPN_TELEGRAM_CADVISOR_URL": f"http://cadvisor:{CADVISOR_PORT}",
            "OVPN_TELEGRAM_HAPROXY_URL": (
                f"http://haproxy:{HAPROXY_METRICS_PORT}/metrics" if spec.is_proxy else ""
            ),
            "OVPN_TELEGRAM_SERVICES": _bot_services(spec),
            "OVPN_TELEGRAM_NOTIFY_CHAT_IDS": "${OVPN_TELEGRAM_NOTIFY_CHAT_IDS:-}",
            "OVPN_TELEGRAM_OWNER_USER_ID": "${OVPN_TELEGRAM_OWNER_USER_ID:-}",
            "OVPN_TELEGRAM_API_BASE_URL": "${OVPN_TELEGRAM_API_BASE_URL:-}",
            "OVPN_TELEGRAM_API_FALLBACK_IPS": "${OVPN_TELEGRAM_API_FALLBACK_IPS:-149.154.167.220}",
            "OVPN_TELEGRAM_DOCKER_SOCKET": DOCKER_SOCKET,
        },
        ports=[f"{BOT_HOST_BINDING}:{BOT_PORT}"],
        volumes=[
            f"./{BOT_TOKEN_FILE}:{TOKEN_MOUNT}:ro",
            f"./{WEBHOOK_TOKEN_FILE}:{WEBHOOK_TOKEN_BOT_MOUNT}:ro",
            f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
        ],
        healthcheck={
            "test": [
                "CMD",
                "python3",
                "-c",
                "import urllib.request; "
                f"urllib.request.urlopen('http://127.0.0.1:{BOT_PORT}/health', timeout=4)",
            ],
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "45s",
        },
    )
    return {
        "services": {
            "prometheus": prometheus,
            "alertmanager": alertmanager,
            "grafana": grafana,
            "node-exporter": node_exporter,
            "cadvisor": cadvisor,
            "ovpn-telegram-bot": bot,
        },
        "networks": {NETWORK: {"name": NETWORK, "external": False}},
        "volumes": {
            name: {"name": name} for name in (PROMETHEUS_VOLUME, ALERTMANAGER_VOLUME, GRAFANA_VOLUME)
        },
    }
