"""Gather one server's desired state, fetch what rendering needs, and render or write its bundle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ovpn.core.model import Server
from ovpn.core.presets import PRESETS, Preset
from ovpn.errors import OvpnError
from ovpn.geodata.cache import resolve_geodata
from ovpn.geodata.match import GeodataSet
from ovpn.ops import bot_webhook
from ovpn.ops.agent_deps import AgentPlatform, dependency_wheels, python_of_base_image, remembered_machine
from ovpn.ops.agent_wheel import agent_wheel
from ovpn.ops.app import App
from ovpn.ops.servers import SERVER_SECRETS
from ovpn.render.bundle import Bundle
from ovpn.render.images import resolve_images
from ovpn.render.server_bundle import Geodata, RenderRequest, render_server_bundle, server_images


@dataclass
class RenderedServer:
    server: Server
    bundle: Bundle
    images: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    # The agent's binary wheels listed in agent/wheels.sha256: deploy uploads them to the host's wheel cache.
    agent_wheels: list[tuple[str, bytes]] = field(default_factory=list)


def proxy_preset(server: Server) -> Preset:
    preset = PRESETS.get(server.proxy_preset or "")
    if preset is None:
        raise OvpnError(
            f"{server.name} uses an unknown proxy preset {server.proxy_preset!r}",
            f"known presets: {', '.join(sorted(PRESETS))}; change it with `ovpn server set {server.name} --proxy-preset`",
        )
    return preset


@dataclass(frozen=True)
class LoadedGeodata:
    lookup: GeodataSet  # for matching destinations (route explain)
    blobs: Geodata  # the files' bytes, as the bundle ships them
    warnings: list[str]


def load_geodata(app: App, preset: Preset) -> LoadedGeodata:
    """The preset's geodata, checked to contain every category the preset's rules name."""
    files = resolve_geodata(preset, app.data_dir, env=app.env)
    warnings = [files.warning] if files.warning else []
    blobs = Geodata(files.geosite.read_bytes(), files.geoip.read_bytes())
    geodata = GeodataSet(blobs.geosite, blobs.geoip, str(files.geosite), str(files.geoip))
    problems = geodata.missing_categories(preset.geosite_categories(), preset.geoip_categories())
    if problems:
        raise OvpnError(
            f"the {preset.name} preset's geodata lacks what its rules need: " + "; ".join(problems),
            "point OVPN_PROXY_GEOSITE_PATH and OVPN_PROXY_GEOIP_PATH at files that have these categories",
        )
    return LoadedGeodata(geodata, blobs, warnings)


def render_server(
    app: App, name: str, *, image_overrides: Mapping[str, str] | None = None, now: datetime | None = None
) -> RenderedServer:
    with app.reading() as repo:
        server = repo.server(name)
        users = repo.users()
        pool = repo.pool(name) if server.is_proxy else []
        attached_to = repo.proxies_of(name)
        telegram = repo.telegram(name)
        secrets = {}
        for secret_name in SERVER_SECRETS:
            value = repo.secret(name, secret_name)
            if value is None:
                raise OvpnError(
                    f"{name} has no {secret_name} in the state", "the state file was edited by hand"
                )
            secrets[secret_name] = value
    webhook_token = bot_webhook.token(app, name) if telegram is not None else ""
    warnings: list[str] = []
    blobs = None
    if server.is_proxy:
        loaded = load_geodata(app, proxy_preset(server))
        blobs, warnings = loaded.blobs, loaded.warnings
        if not pool:
            warnings.append(
                f"{name} has no backend attached: its foreign traffic is refused (fail closed) until you run "
                f"`ovpn server backend attach --proxy {name} --backend <vpn-server>` and redeploy"
            )
    base_image = resolve_images(server.xray_version, dict(server.images), image_overrides or {})[
        "ovpn-agent-base"
    ]
    platform = AgentPlatform(remembered_machine(app.data_dir, name), python_of_base_image(base_image))
    wheels = dependency_wheels(app.data_dir, platform, app.env)
    request = RenderRequest(
        server=server,
        users=users,
        now=now or datetime.now(UTC),
        secrets=secrets,
        pool=pool,
        attached_to=attached_to,
        geodata=blobs,
        image_overrides=image_overrides or {},
        agent_wheel=agent_wheel(app.data_dir),
        agent_dependency_wheels=wheels,
        telegram=telegram,
        bot_webhook_token=webhook_token,
    )
    return RenderedServer(server, render_server_bundle(request), server_images(request), warnings, wheels)
