"""Attaching and detaching backends of a proxy."""

from __future__ import annotations

from dataclasses import dataclass

from ovpn.core import validation
from ovpn.core.model import Attachment
from ovpn.core.pool import plan_attach
from ovpn.errors import OvpnError
from ovpn.ops.app import App


@dataclass(frozen=True)
class AttachResult:
    attachment: Attachment
    changed: bool
    provisioned_identity: bool


def attach(app: App, proxy_name: str, backend_name: str, priority: int) -> AttachResult:
    validation.priority(priority)
    if proxy_name == backend_name:
        raise OvpnError("a server cannot be its own backend", "attach a vpn server to a proxy")
    with app.writing() as repo:
        proxy = repo.server(proxy_name)
        backend = repo.server(backend_name)
        pool = [m.server for m in repo.pool(proxy_name)]
        updated = plan_attach(proxy, backend, pool)
        provisioned = updated != backend
        if provisioned:
            repo.update_server(updated)
        changed = repo.attach(proxy_name, backend_name, priority)
    return AttachResult(Attachment(proxy_name, backend_name, priority), changed or provisioned, provisioned)


def detach(app: App, proxy_name: str, backend_name: str) -> None:
    """Remove the attachment. The backend keeps its relay identity for as long as any proxy uses it."""
    with app.writing() as repo:
        repo.server(proxy_name)
        repo.server(backend_name)
        if not repo.detach(proxy_name, backend_name):
            raise OvpnError(
                f"{backend_name} is not attached to {proxy_name}",
                f"see `ovpn server backend list --proxy {proxy_name}`",
            )


def attachments(app: App, proxy_name: str) -> list[Attachment]:
    with app.reading() as repo:
        proxy = repo.server(proxy_name)
        if proxy.role != "proxy":
            raise OvpnError(
                f"{proxy_name} is a {proxy.role} server, not a proxy", "backends belong to proxies"
            )
        return repo.attachments(proxy_name)
