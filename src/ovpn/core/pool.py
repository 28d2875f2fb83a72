"""Backend pools: the shared relay identity and REALITY parity.

HAProxy hands any relay connection to any backend of the pool, so the proxy's single `foreign-pool` outbound must
be accepted by every one of them: same key pair, same server name, same relay short id and relay UUID.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ovpn.core.model import Server
from ovpn.core.reality import generate_short_id
from ovpn.errors import OvpnError


@dataclass(frozen=True)
class RelayIdentity:
    uuid: str
    short_id: str


def _fields(server: Server) -> dict[str, str | None]:
    return {
        "REALITY public key": server.reality_public_key,
        "REALITY server name": server.reality_server_name,
        "relay short id": server.relay_short_id,
        "relay UUID": server.relay_uuid,
    }


def parity_problems(pool: Sequence[Server]) -> list[str]:
    """One line per field that differs, naming every server and its value (public values only)."""
    problems: list[str] = []
    if len(pool) < 2:
        return problems
    per_server = [(s.name, _fields(s)) for s in sorted(pool, key=lambda s: s.name)]
    for field_name in per_server[0][1]:
        values = {name: f[field_name] for name, f in per_server}
        if len(set(values.values())) > 1:
            listing = ", ".join(f"{name}={value or '(none)'}" for name, value in values.items())
            problems.append(f"{field_name} differs: {listing}")
    return problems


def require_parity(pool: Sequence[Server], proxy_name: str) -> None:
    problems = parity_problems(pool)
    if problems:
        raise OvpnError(
            f"backend pool of {proxy_name} is not in REALITY parity: " + "; ".join(problems),
            "every backend of a pool needs the same key pair and server name; set them with "
            "`ovpn server set NAME --reality-private-key ... --reality-server-name ...` (this changes that "
            "server's links) or attach a matching backend instead",
        )


def relay_identity_for(
    backend: Server,
    current_pool: Sequence[Server],
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    new_short_id: Callable[[], str] = generate_short_id,
) -> RelayIdentity:
    """The identity `backend` must carry to join `current_pool`: the pool's, else its own, else a new one."""
    for member in sorted(current_pool, key=lambda s: s.name):
        if member.relay_uuid and member.relay_short_id:
            return RelayIdentity(member.relay_uuid, member.relay_short_id)
    if backend.relay_uuid and backend.relay_short_id:
        return RelayIdentity(backend.relay_uuid, backend.relay_short_id)
    return RelayIdentity(new_uuid(), new_short_id())


def plan_attach(proxy: Server, backend: Server, current_pool: Sequence[Server]) -> Server:
    """Validate an attach and return the backend as it must be stored (with the relay identity)."""
    if proxy.role != "proxy":
        raise OvpnError(
            f"{proxy.name} is a {proxy.role} server, not a proxy",
            "backends are attached to servers added with --role proxy",
        )
    if backend.role != "vpn":
        raise OvpnError(
            f"{backend.name} is a {backend.role} server and cannot be a backend",
            "only vpn servers can be attached as backends of a proxy",
        )
    identity = relay_identity_for(backend, [s for s in current_pool if s.name != backend.name])
    updated = backend
    if not backend.has_relay_identity:
        updated = replace(backend, relay_uuid=identity.uuid, relay_short_id=identity.short_id)
    pool = [s for s in current_pool if s.name != backend.name] + [updated]
    require_parity(pool, proxy.name)
    return updated
