"""The host's main Compose file and its `.env`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ovpn.core.model import Server, TelegramSettings
from ovpn.core.names import (
    AGENT_CONTAINER,
    AGENT_HOST_PORT,
    AGENT_PORT,
    HAPROXY_CONTAINER,
    HAPROXY_METRICS_PORT,
    NETWORK,
    RELAY_PORT,
    XRAY_API_PORT,
    XRAY_CONTAINER,
)
from ovpn.render.images import SERVICES, env_var

PROJECT = "ovpn"
AGENT_DATA_VOLUME = "ovpn-agent-data"
XRAY_ASSET_DIR = "/usr/local/share/xray"
# The agent's image has Python and nothing else to probe with.
AGENT_PROBE = (
    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{AGENT_PORT}/health', timeout=4)"
)
# The certificate whose expiry the agent exports: the host file named by OVPN_AGENT_CERT_FILE, else /dev/null,
# which the agent reads as "not configured" (an empty file).
AGENT_CERT_PATH = "/etc/ovpn-agent/cert.pem"
AGENT_CERT_MOUNT = f"${{OVPN_AGENT_CERT_FILE:-/dev/null}}:{AGENT_CERT_PATH}:ro"


def json_file_logging() -> dict[str, Any]:
    """A fresh dict per service (so the YAML has no anchors): bounded json-file logs."""
    return {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}}


def _service(image_service: str, container: str, **fields: Any) -> dict[str, Any]:
    return {
        "image": f"${{{env_var(image_service)}:?set {env_var(image_service)} in .env}}",
        "container_name": container,
        "restart": "unless-stopped",
        **fields,
        "networks": [NETWORK],
        "logging": json_file_logging(),
    }


def render_compose(server: Server) -> str:
    xray_volumes = ["./xray/config.json:/etc/xray/config.json:ro"]
    if server.is_proxy:
        xray_volumes += [
            f"./geodata/geosite.dat:{XRAY_ASSET_DIR}/geosite.dat:ro",
            f"./geodata/geoip.dat:{XRAY_ASSET_DIR}/geoip.dat:ro",
        ]
    xray = _service(
        "xray",
        XRAY_CONTAINER,
        command=["run", "-config", "/etc/xray/config.json"],
        ports=[f"{server.port}:{server.port}/tcp"],
        expose=[str(XRAY_API_PORT)],
        volumes=xray_volumes,
    )
    services: dict[str, Any] = {"xray": xray}
    if server.is_proxy:
        xray["depends_on"] = ["haproxy"]
        services["haproxy"] = _service(
            "haproxy",
            HAPROXY_CONTAINER,
            command=["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
            expose=[str(RELAY_PORT), str(HAPROXY_METRICS_PORT)],
            volumes=["./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"],
        )
    services["ovpn-agent"] = _service(
        "ovpn-agent",
        AGENT_CONTAINER,
        command=[
            "--listen",
            f"0.0.0.0:{AGENT_PORT}",
            "--xray-api",
            f"xray:{XRAY_API_PORT}",
            "--db-path",
            "/var/lib/ovpn-agent",
            "--cert-file",
            AGENT_CERT_PATH,
        ],
        environment={"OVPN_AGENT_TOKEN": "${OVPN_AGENT_TOKEN:?set OVPN_AGENT_TOKEN in .env}"},
        ports=[f"127.0.0.1:${{OVPN_AGENT_HOST_PORT:-{AGENT_HOST_PORT}}}:{AGENT_PORT}"],
        volumes=[f"{AGENT_DATA_VOLUME}:/var/lib/ovpn-agent", AGENT_CERT_MOUNT],
        healthcheck={
            "test": ["CMD", "python3", "-c", AGENT_PROBE],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "10s",
        },
    )
    document = {
        "name": PROJECT,
        "services": services,
        "networks": {NETWORK: {"name": NETWORK}},
        "volumes": {AGENT_DATA_VOLUME: {"name": AGENT_DATA_VOLUME}},
    }
    header = "# Rendered by ovpn for {} ({}); changes are overwritten by the next deploy.\n"
    return header.format(server.name, server.role) + yaml.safe_dump(document, sort_keys=False)


AGENT_UID = 10001


def render_agent_dockerfile(wheel_name: str, dependency_wheels: Sequence[str] = ()) -> str:
    """The agent's image, built on the host: the base image (`OVPN_AGENT_BASE_IMAGE`) plus ovpn's own wheel and
    the binary wheels it needs (gRPC, protobuf) that the bundle carries in `agent/wheels/`.

    pip runs with `--no-index`: nothing is fetched from a package index on the host, and pip checks that the
    carried wheels satisfy the agent's pinned requirements for this platform.
    """
    copy_wheels = "COPY wheels/ /tmp/ovpn-agent/\n" if dependency_wheels else ""
    return (
        "# Rendered by ovpn: the ovpn-agent image, built on this host by `ovpn deploy`.\n"
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE}\n"
        f"COPY {wheel_name} /tmp/ovpn-agent/\n"
        f"{copy_wheels}"
        "RUN python3 -m pip install --no-index --find-links /tmp/ovpn-agent --no-cache-dir --break-system-packages \\\n"
        f"      /tmp/ovpn-agent/{wheel_name} \\\n"
        f"    && rm -rf /tmp/ovpn-agent && mkdir -p /var/lib/ovpn-agent && chown {AGENT_UID}:{AGENT_UID} /var/lib/ovpn-agent\n"
        f"USER {AGENT_UID}:{AGENT_UID}\n"
        'ENTRYPOINT ["ovpn-agent"]\n'
    )


def render_env(
    server: Server,
    images: Mapping[str, str],
    secrets: Mapping[str, str],
    telegram: TelegramSettings | None = None,
) -> str:
    """`.env` (mode 0600): image references, the Telegram bot's recipients and the secrets the services read
    from the environment (the bot's token is not one of them: it stays in its own file on the host)."""
    lines = [f"# ovpn runtime environment for {server.name}; mode 0600, holds secrets."]
    for service in SERVICES:
        if service == "haproxy" and not server.is_proxy:
            continue
        lines.append(f"{env_var(service)}={images[service]}")
    lines.append(f"OVPN_AGENT_HOST_PORT={AGENT_HOST_PORT}")
    if server.agent_cert_file:
        lines.append(f"OVPN_AGENT_CERT_FILE={server.agent_cert_file}")
    if telegram is not None:
        lines.append(f"OVPN_TELEGRAM_OWNER_USER_ID={telegram.owner_user_id}")
        lines.append(f"OVPN_TELEGRAM_NOTIFY_CHAT_IDS={','.join(map(str, telegram.notify_chat_ids))}")
        if telegram.api_base_url:
            lines.append(f"OVPN_TELEGRAM_API_BASE_URL={telegram.api_base_url}")
    lines.extend(f"{name}={secrets[name]}" for name in sorted(secrets))
    return "\n".join(lines) + "\n"
