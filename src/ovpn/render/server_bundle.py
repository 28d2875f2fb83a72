"""Desired state of one server -> its complete deploy bundle (pure; the same input gives the same bytes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from ovpn.core.model import PoolMember, Server, TelegramSettings, User
from ovpn.core.names import XRAY_GID
from ovpn.core.pool import require_parity
from ovpn.core.presets import PRESETS
from ovpn.core.users import require_distinct_identities
from ovpn.errors import OvpnError
from ovpn.render.bundle import Bundle, BundleFile
from ovpn.render.compose import render_agent_dockerfile, render_compose, render_env
from ovpn.render.haproxy import render_haproxy_config
from ovpn.render.images import resolve_images
from ovpn.render.monitoring import MonitoringSpec, render_monitoring
from ovpn.render.xray import render_xray_config


class Geodata(NamedTuple):
    """The proxy's geodata files' bytes, as the bundle ships them."""

    geosite: bytes
    geoip: bytes


@dataclass(frozen=True)
class RenderRequest:
    server: Server
    users: Sequence[User]
    now: datetime
    secrets: Mapping[str, str]
    pool: Sequence[PoolMember] = ()
    attached_to: Sequence[str] = ()
    geodata: Geodata | None = None
    image_overrides: Mapping[str, str] = field(default_factory=dict)
    agent_wheel: tuple[str, bytes] | None = None
    # The binary wheels the agent needs (gRPC), for the host's platform: (file name, bytes).
    agent_dependency_wheels: Sequence[tuple[str, bytes]] = ()
    telegram: TelegramSettings | None = None
    # The token the bot's webhooks require (ovpn.ops.bot_webhook); given whenever `telegram` is.
    bot_webhook_token: str = field(default="", repr=False)


def wheel_checksums(wheels: Sequence[tuple[str, bytes]]) -> str:
    """`sha256sum` format, one line per wheel, sorted by name."""
    return "".join(f"{hashlib.sha256(content).hexdigest()}  {name}\n" for name, content in sorted(wheels))


def _json(document: object) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False) + "\n").encode()


def _relay_uuid(server: Server, attached_to: Sequence[str]) -> str | None:
    if not attached_to:
        return None
    if server.relay_uuid is None:
        raise OvpnError(
            f"{server.name} is attached to {', '.join(attached_to)} but has no relay identity",
            f"run `ovpn server backend attach --proxy {attached_to[0]} --backend {server.name}` again",
        )
    return server.relay_uuid


def _agent_build(request: RenderRequest) -> dict[str, BundleFile]:
    """The agent image's build context as the bundle carries it (empty without a wheel)."""
    if request.agent_wheel is None:
        return {}
    wheel_name, wheel = request.agent_wheel
    dependencies = sorted(request.agent_dependency_wheels)
    files = {
        "agent/Dockerfile": BundleFile(
            render_agent_dockerfile(wheel_name, [n for n, _ in dependencies]).encode()
        ),
        f"agent/{wheel_name}": BundleFile(wheel),
    }
    if dependencies:
        # Only the list: the wheels (megabytes) reach the host once, into a cache outside the releases, and
        # join the image's build context there (ovpn.ops.deploy.build_agent_image checks these sums).
        files["agent/wheels.sha256"] = BundleFile(wheel_checksums(dependencies).encode())
    return files


def server_images(request: RenderRequest) -> dict[str, str]:
    """Every service's image. The agent's default tag carries a digest of its build context and base image, so
    each release names the agent it was built with: a rollback runs the previous agent, not the newest build.
    The Telegram bot runs from the same image unless its image is overridden."""
    server = request.server
    images = resolve_images(server.xray_version, dict(server.images), request.image_overrides)

    def overridden(service: str) -> bool:
        return service in dict(server.images) or service in request.image_overrides

    build = _agent_build(request)
    if build and not overridden("ovpn-agent"):
        digest = hashlib.sha256(images["ovpn-agent-base"].encode())
        for name, file in sorted(build.items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(file.content).digest())
        images["ovpn-agent"] = f"{images['ovpn-agent']}-{digest.hexdigest()[:12]}"
    if not overridden("ovpn-telegram-bot"):
        images["ovpn-telegram-bot"] = images["ovpn-agent"]
    return images


def render_server_bundle(request: RenderRequest) -> Bundle:
    require_distinct_identities(request.users)
    server = request.server
    admitted = sorted((u for u in request.users if u.is_active(request.now)), key=lambda u: u.email)
    images = server_images(request)
    bundle: Bundle = {}

    preset = None
    representative = None
    if server.is_proxy:
        preset = PRESETS.get(server.proxy_preset or "")
        if preset is None:
            raise OvpnError(
                f"{server.name} names an unknown proxy preset {server.proxy_preset!r}",
                f"known presets: {', '.join(sorted(PRESETS))}",
            )
        if request.geodata is None:
            raise OvpnError(
                f"{server.name} is a proxy and needs geodata to render",
                "render proxies through `ovpn config render`",
            )
        members = [m.server for m in request.pool]
        require_parity(members, server.name)
        for member in members:
            _relay_uuid(member, [server.name])
        representative = min(members, key=lambda s: s.name) if members else None
        bundle["haproxy/haproxy.cfg"] = BundleFile(render_haproxy_config(request.pool).encode())
        bundle["geodata/geosite.dat"] = BundleFile(request.geodata.geosite)
        bundle["geodata/geoip.dat"] = BundleFile(request.geodata.geoip)

    config = render_xray_config(
        server,
        admitted,
        relay_uuid=_relay_uuid(server, request.attached_to),
        preset=preset,
        pool_representative=representative,
    )
    # The config holds the REALITY private key and every user id: readable by root and the xray group only.
    bundle["xray/config.json"] = BundleFile(_json(config), 0o640, XRAY_GID)
    bundle["docker-compose.yml"] = BundleFile(render_compose(server).encode())
    bundle.update(_agent_build(request))
    if request.telegram is not None and not request.bot_webhook_token:
        raise OvpnError(
            f"{server.name} has a Telegram bot but no webhook token to render",
            "render through `ovpn config render`, which gives the bot its token",
        )
    bundle[".env"] = BundleFile(render_env(server, images, request.secrets, request.telegram).encode(), 0o600)
    bundle.update(
        render_monitoring(
            MonitoringSpec(
                server.name,
                server.role,
                images,
                bot_enabled=request.telegram is not None,
                webhook_token=request.bot_webhook_token if request.telegram is not None else "",
            )
        )
    )
    return dict(sorted(bundle.items()))
