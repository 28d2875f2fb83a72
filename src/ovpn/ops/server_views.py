"""Read-only views of the servers for listing and showing them, each read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from ovpn.core.model import Attachment, Server
from ovpn.ops.app import App


@dataclass(frozen=True)
class ServerListing:
    servers: list[Server]
    # Each server's pool neighbours: a proxy's backends, a vpn server's proxies, in attachment order.
    neighbours: dict[str, list[str]]


@dataclass(frozen=True)
class ServerDetail:
    server: Server
    backends: list[Attachment] | None  # a proxy's pool; None for a vpn server
    attached_to: list[str]  # the proxies whose pool holds this server


def all_servers(app: App) -> list[Server]:
    with app.reading() as repo:
        return repo.servers()


def server_listing(app: App) -> ServerListing:
    with app.reading() as repo:
        servers = repo.servers()
        attachments = repo.attachments()
    neighbours: dict[str, list[str]] = {}
    for a in attachments:
        neighbours.setdefault(a.proxy, []).append(a.backend)
        neighbours.setdefault(a.backend, []).append(a.proxy)
    return ServerListing(servers, neighbours)


def server_detail(app: App, name: str) -> ServerDetail:
    with app.reading() as repo:
        server = repo.server(name)
        backends = repo.attachments(name) if server.is_proxy else None
        return ServerDetail(server, backends, repo.proxies_of(name))
