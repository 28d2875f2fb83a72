"""Backend pools: the shared relay identity and REALITY parity.

HAProxy hands any relay connection to any backend of the pool, so the proxy's single `foreign-pool` outbound must
be accepted by every one of them: same key pair, same short id, same server name and the same relay UUID. The relay
uses the backends' own short id on purpose: a backend that was not redeployed after the attach then accepts the
REALITY handshake and rejects the unknown UUID, logging `invalid request user id` (the seed's troubleshooting
signal), instead of silently handing the proxy to its camouflage site.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from ovpn.core.model import Server
from ovpn.errors import OvpnError


def relay_fingerprint(relay_uuid: str | None) -> str | None:
    """What may be printed of a relay UUID (a credential): enough to tell two apart, nothing to rebuild one from."""
    return None if relay_uuid is None else "sha256:" + hashlib.sha256(relay_uuid.encode()).hexdigest()[:12]


def _fields(server: Server) -> dict[str, str | None]:
    return {
        "REALITY public key": server.reality_public_key,
        "REALITY short id": server.reality_short_id,
        "REALITY server name": server.reality_server_name,
        "relay UUID": relay_fingerprint(server.relay_uuid),
    }


def parity_problems(pool: Sequence[Server]) -> list[str]:
    """One line per field that differs, naming every server and its value (public values, and the relay UUID's
    fingerprint)."""
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


def require_parity(pool: Sequence[Server], proxy_name: str, newcomer: str | None = None) -> None:
    """Refuse a pool whose backends differ; `newcomer` is the backend being attached or changed, whose identity
    the hint proposes to align with the others'."""
    problems = parity_problems(pool)
    if problems:
        others = sorted(s.name for s in pool if s.name != newcomer)
        target, source = (newcomer, others[0]) if newcomer else (others[-1], others[0])
        raise OvpnError(
            f"backend pool of {proxy_name} is not in REALITY parity: " + "; ".join(problems),
            f"every backend of a pool needs the same REALITY identity: `ovpn server set {target} --identity-from "
            f"{source}` gives {target} the identity of {source} (it first shows whose direct links change), or "
            "attach a matching backend instead",
        )


def relay_uuid_for(
    backend: Server, current_pool: Sequence[Server], new_uuid: Callable[[], str] = lambda: str(uuid.uuid4())
) -> str:
    """The relay UUID `backend` must carry to join `current_pool`: the pool's, else its own, else a new one."""
    for member in sorted(current_pool, key=lambda s: s.name):
        if member.relay_uuid:
            return member.relay_uuid
    return backend.relay_uuid or new_uuid()


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
    relay_uuid = relay_uuid_for(backend, [s for s in current_pool if s.name != backend.name])
    updated = backend if backend.relay_uuid else replace(backend, relay_uuid=relay_uuid)
    pool = [s for s in current_pool if s.name != backend.name] + [updated]
    require_parity(pool, proxy.name, newcomer=backend.name)
    return updated
