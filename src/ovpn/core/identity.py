"""The REALITY identity of the vpn servers: one key pair, short id, server name and target that a new vpn server
joins by default, so that any of them can back a proxy's pool without rekeying (and without changing the links
of its direct users). Proxies keep identities of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ovpn.core.model import Server


@dataclass(frozen=True)
class Identity:
    private_key: str
    short_id: str
    server_name: str
    target: str

    def describe(self, public_key: str) -> str:
        """The identity as an operator may read it (public values only)."""
        return (
            f"public key {public_key}, short id {self.short_id}, server name {self.server_name}, "
            f"target {self.target}"
        )


def identity_of(server: Server) -> Identity:
    return Identity(
        server.reality_private_key, server.reality_short_id, server.reality_server_name, server.reality_target
    )


@dataclass(frozen=True)
class Cluster:
    """The vpn servers and the identity they share (None when there are none, or they do not agree)."""

    members: tuple[Server, ...]
    identity: Identity | None

    @property
    def split(self) -> bool:
        return bool(self.members) and self.identity is None

    def names(self) -> str:
        return ", ".join(s.name for s in self.members)


def cluster_of(servers: Sequence[Server]) -> Cluster:
    members = tuple(sorted((s for s in servers if s.role == "vpn"), key=lambda s: s.name))
    identities = {identity_of(s) for s in members}
    return Cluster(members, identities.pop() if len(identities) == 1 else None)


def conflicts(given: dict[str, str | None], identity: Identity) -> list[str]:
    """The explicitly given values (option name -> value, None when not given) that differ from `identity`."""
    expected = {
        "--reality-private-key": identity.private_key,
        "--reality-short-id": identity.short_id,
        "--reality-server-name": identity.server_name,
        "--reality-target": identity.target,
    }
    return [option for option, value in given.items() if value is not None and value != expected[option]]
