"""Server records: add, change, remove, with every rule checked before anything is written."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ovpn.core import reality, validation
from ovpn.core.identity import Identity, cluster_of, conflicts, identity_of
from ovpn.core.model import (
    DEFAULT_PORT,
    DEFAULT_REALITY_SERVER_NAME,
    DEFAULT_SSH_PORT,
    DEFAULT_SSH_USER,
    DEFAULT_XRAY_VERSION,
    ROLES,
    Server,
)
from ovpn.core.pool import require_parity
from ovpn.core.presets import DEFAULT_PROXY_PRESET, PRESETS
from ovpn.errors import InvalidInput, OvpnError
from ovpn.ops.app import App
from ovpn.render.images import SERVICES
from ovpn.state.repo import Repository


@dataclass(frozen=True)
class ServerSpec:
    """A server as given (`server add` options, by field name): unchecked; None where a value is derived."""

    name: str
    role: str
    host: str
    domain: str | None = None
    port: int = DEFAULT_PORT
    ssh_user: str = DEFAULT_SSH_USER
    ssh_port: int = DEFAULT_SSH_PORT
    ssh_identity: str | None = None
    proxy_preset: str | None = None
    reality_private_key: str | None = None
    reality_public_key: str | None = None
    reality_short_id: str | None = None
    reality_server_name: str | None = None
    reality_target: str | None = None
    xray_version: str = DEFAULT_XRAY_VERSION
    images: tuple[str, ...] = ()
    agent_cert_file: str | None = None


# Per-server secrets created with the server; rendered into the host's .env.
SERVER_SECRETS = ("OVPN_AGENT_TOKEN", "GRAFANA_ADMIN_PASSWORD")


def parse_images(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`SERVICE=IMAGE` pairs; an empty IMAGE removes an override."""
    images: dict[str, str] = {}
    for item in items:
        service, sep, ref = item.partition("=")
        if not sep or service not in SERVICES:
            raise OvpnError(
                f"invalid image override {item!r}",
                f"use SERVICE=IMAGE with SERVICE one of: {', '.join(SERVICES)}",
            )
        images[service] = validation.image_reference(ref) if ref else ""
    return images


def _role(value: str) -> str:
    if value not in ROLES:
        raise OvpnError(f"unknown role {value!r}", f"use one of: {', '.join(ROLES)}")
    return value


def _preset(role: str, value: str | None) -> str | None:
    if role == "vpn":
        if value is not None:
            raise OvpnError(
                "--proxy-preset is only for proxy servers", "drop --proxy-preset or use --role proxy"
            )
        return None
    preset = value or DEFAULT_PROXY_PRESET
    if preset not in PRESETS:
        raise OvpnError(f"unknown proxy preset {preset!r}", f"known presets: {', '.join(sorted(PRESETS))}")
    return preset


def _identity_path(value: str | None) -> str | None:
    if value is not None and (not value or any(ord(c) < 32 for c in value)):
        raise OvpnError(f"invalid SSH identity path {value!r}", "give the path of a private key file")
    return value


def _cert_path(value: str | None) -> str | None:
    """An absolute path on the host; it reaches `.env` and a Compose bind mount, so only plain characters."""
    if not value:
        return None
    if not re.fullmatch(r"/[A-Za-z0-9._@+/-]{1,250}", value) or "/../" in f"{value}/":
        raise OvpnError(
            f"invalid --agent-cert-file {value!r}",
            "an absolute path on the host of a PEM certificate, e.g. /etc/letsencrypt/live/example.com/fullchain.pem",
        )
    return value


def build_server(spec: ServerSpec) -> Server:
    role = _role(spec.role)
    keys = reality.key_pair(spec.reality_private_key, spec.reality_public_key)
    server_name = validation.server_name_indication(spec.reality_server_name or DEFAULT_REALITY_SERVER_NAME)
    host = validation.hostname(spec.host, "host")
    images = {k: v for k, v in parse_images(spec.images).items() if v}
    name = validation.server_name(spec.name)
    port = validation.port(spec.port)
    ssh_port = validation.port(spec.ssh_port, "ssh-port")
    if port == ssh_port:
        raise InvalidInput(
            f"--port {port} is the SSH port of {name}",
            f"Xray (HAProxy on a proxy) cannot listen where sshd does: give another --port (default {DEFAULT_PORT})",
        )
    return Server(
        name=name,
        role="proxy" if role == "proxy" else "vpn",
        host=host,
        domain=validation.hostname(spec.domain, "domain") if spec.domain else host,
        port=port,
        ssh_user=validation.ssh_user(spec.ssh_user),
        ssh_port=ssh_port,
        ssh_identity=_identity_path(spec.ssh_identity),
        xray_version=validation.xray_version(spec.xray_version),
        reality_private_key=keys.private_key,
        reality_public_key=keys.public_key,
        reality_short_id=reality.short_id(
            spec.reality_short_id if spec.reality_short_id is not None else reality.generate_short_id()
        ),
        reality_server_name=server_name,
        reality_target=validation.reality_target(spec.reality_target or f"{server_name}:443"),
        proxy_preset=_preset(role, spec.proxy_preset),
        images=tuple(sorted(images.items())),
        agent_cert_file=_cert_path(spec.agent_cert_file),
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Added:
    server: Server
    shared_with: str | None  # the servers whose REALITY identity it joined (None: one of its own)


def add_server(
    app: App, spec: ServerSpec, *, new_identity: bool = False, identity_from: str | None = None
) -> Added:
    """Add a server. A vpn server joins the identity the vpn servers share (`identity_from`: that server's),
    unless `new_identity`; explicit values that differ from the one it joins are refused."""
    own = build_server(spec)  # every value checked before the identity is chosen
    warnings: list[str] = []
    with app.writing() as repo:
        source, whose = _identity_source(repo, spec, new_identity, identity_from, warnings.append)
        server = own if source is None else _joined(spec, source, whose)
        repo.add_server(server)
        for secret_name in SERVER_SECRETS:
            repo.set_secret(server.name, secret_name, new_token())
    for warning in warnings:
        app.warn(warning)
    return Added(server, whose if source is not None else None)


def _identity_source(
    repo: Repository,
    spec: ServerSpec,
    new_identity: bool,
    identity_from: str | None,
    warn: Callable[[str], None],
) -> tuple[Identity | None, str]:
    """The identity a new server joins (None: one of its own) and whose it is."""
    if spec.role != "vpn":
        if new_identity or identity_from:
            raise InvalidInput(
                "--new-identity and --identity-from are for vpn servers",
                "a proxy always has an identity of its own: drop the option",
            )
        return None, ""
    if new_identity and identity_from:
        raise InvalidInput("--new-identity and --identity-from exclude each other", "give one of them")
    if identity_from is not None:
        other = repo.server(identity_from)
        if other.role != "vpn":
            raise InvalidInput(f"{identity_from} is a proxy: its identity is its own", "name a vpn server")
        return identity_of(other), other.name
    cluster = cluster_of(repo.servers())
    if new_identity or not cluster.members:
        return None, ""
    if cluster.identity is None:
        warn(
            f"the vpn servers ({cluster.names()}) do not share one REALITY identity: {spec.name} gets one of its "
            f"own; `ovpn server set {spec.name} --identity-from OTHER` joins one of theirs"
        )
        return None, ""
    return cluster.identity, cluster.names()


def _joined(spec: ServerSpec, source: Identity, whose: str) -> Server:
    """The server built with `source`'s identity wherever the spec gives none; a given value that differs is
    refused, naming the identity it would have joined."""
    own_key = spec.reality_private_key is not None
    filled = dataclasses.replace(
        spec,
        reality_private_key=spec.reality_private_key if own_key else source.private_key,
        reality_public_key=spec.reality_public_key if own_key else None,
        reality_short_id=spec.reality_short_id if spec.reality_short_id is not None else source.short_id,
        reality_server_name=spec.reality_server_name or source.server_name,
        reality_target=spec.reality_target or (None if spec.reality_server_name else source.target),
    )
    server = build_server(filled)
    given = {
        "--reality-private-key": server.reality_private_key if own_key else None,
        "--reality-short-id": server.reality_short_id if spec.reality_short_id is not None else None,
        "--reality-server-name": server.reality_server_name if spec.reality_server_name else None,
        "--reality-target": server.reality_target if spec.reality_target else None,
    }
    differing = conflicts(given, source)
    if differing:
        public = reality.key_pair(source.private_key, None).public_key
        raise InvalidInput(
            f"{', '.join(differing)} of {spec.name} differ from the REALITY identity of {whose} "
            f"({source.describe(public)})",
            f"drop {'them' if len(differing) > 1 else 'it'} to join that identity, or pass --new-identity to give "
            f"{spec.name} one of its own",
        )
    return server


def spec_of(server: Server) -> ServerSpec:
    """The spec that builds `server` again, less its public key (derived from the private key)."""
    given = {f.name: getattr(server, f.name) for f in dataclasses.fields(ServerSpec)}
    given["reality_public_key"] = None
    given["images"] = tuple(f"{k}={v}" for k, v in server.images)
    return ServerSpec(**given)


def _check_pools(repo: Repository, changed: Server) -> None:
    for proxy in repo.proxies_of(changed.name):
        members = [changed if m.server.name == changed.name else m.server for m in repo.pool(proxy)]
        require_parity(members, proxy, newcomer=changed.name)


def set_server(app: App, name: str, changes: Mapping[str, Any]) -> Server:
    """Apply field changes (ServerSpec names; `images` adds overrides, `SERVICE=` removes one).

    A new server name without a new target moves the target along; a new private key derives its public key.
    Nothing is written if any rule or any pool's parity would break.
    """
    if "role" in changes:
        raise OvpnError("a server's role cannot be changed", "add a new server with the other role instead")
    with app.writing() as repo:
        current = repo.server(name)
        spec = spec_of(current)
        updates = dict(changes)
        if "reality_server_name" in updates and "reality_target" not in updates:
            updates["reality_target"] = None
        if "images" in updates:
            updates["images"] = spec.images + tuple(updates["images"])
        updated = build_server(dataclasses.replace(spec, **updates))
        updated = dataclasses.replace(updated, relay_uuid=current.relay_uuid)
        _check_pools(repo, updated)
        repo.update_server(updated)
    return updated


IDENTITY_FIELDS = ("reality_private_key", "reality_short_id", "reality_server_name", "reality_target")


@dataclass(frozen=True)
class IdentityChange:
    """What `server set NAME --identity-from OTHER` would do: the identity it takes and whose links change."""

    server: str
    source: str
    changes: dict[str, str]
    usernames: list[str]


def identity_change(app: App, name: str, source_name: str) -> IdentityChange:
    with app.reading() as repo:
        server, source = repo.server(name), repo.server(source_name)
        usernames = [u.username for u in repo.users()]
    for s in (server, source):
        if s.role != "vpn":
            raise InvalidInput(f"{s.name} is a proxy: proxies keep REALITY identities of their own",
                               "--identity-from works between vpn servers")  # fmt: skip
    if name == source_name:
        raise InvalidInput(f"{name} cannot take its own identity", "name another vpn server")
    if identity_of(server) == identity_of(source):
        raise InvalidInput(f"{name} already has the REALITY identity of {source_name}", "nothing to change")
    return IdentityChange(name, source_name, {f: getattr(source, f) for f in IDENTITY_FIELDS}, usernames)


def remove_server(app: App, name: str) -> None:
    with app.writing() as repo:
        repo.server(name)
        as_proxy = repo.attachments(name)
        if as_proxy:
            backends = ", ".join(a.backend for a in as_proxy)
            raise OvpnError(
                f"{name} still has backends attached: {backends}",
                f"detach them first: ovpn server backend detach --proxy {name} --backend {as_proxy[0].backend}",
            )
        as_backend = repo.proxies_of(name)
        if as_backend:
            raise OvpnError(
                f"{name} is still a backend of {', '.join(as_backend)}",
                f"detach it first: ovpn server backend detach --proxy {as_backend[0]} --backend {name}",
            )
        repo.remove_server(name)
