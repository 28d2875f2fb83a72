"""`route explain`: which way a destination leaves a proxy, decided by the proxy's own rendered rules."""

from __future__ import annotations

from dataclasses import dataclass

from ovpn.errors import OvpnError
from ovpn.geodata.explain import explain_route, parse_name, sniffed_names_reach_routing
from ovpn.ops.app import App
from ovpn.ops.render import load_geodata, proxy_preset
from ovpn.render.xray import render_xray_config

_MEANING = {
    "direct": "exits directly from the proxy",
    "foreign-pool": "is relayed through HAProxy to a foreign backend",
    "block": "is blocked (it would reach the host's own services)",
}


@dataclass(frozen=True)
class RouteExplanation:
    server: str
    destination: str
    outbound: str
    rule_tag: str | None
    rule: str | None
    matcher: str | None
    meaning: str
    pool_empty: bool
    sni: str | None = None
    """The TLS SNI or HTTP Host the client sends (`--sni`), normalized."""
    sni_routed: bool = False
    """Whether the proxy's routing sees that name (only if its inbound sniffs; rendered proxies do not)."""


def explain(app: App, server_name: str, destination: str, sni: str | None = None) -> RouteExplanation:
    """How the proxy routes `destination`, for a connection that names `sni` in its TLS SNI or HTTP Host."""
    sni_name = None if sni is None else parse_name(sni)
    with app.reading() as repo:
        server = repo.server(server_name)
        if not server.is_proxy:
            raise OvpnError(
                f"{server_name} is a vpn server: it sends everything out directly",
                "route explain answers for proxy servers",
            )
        pool = [m.server for m in repo.pool(server_name)]
    preset = proxy_preset(server)
    geodata = load_geodata(app, preset).lookup
    representative = min(pool, key=lambda s: s.name) if pool else None
    config = render_xray_config(
        server, [], relay_uuid=None, preset=preset, pool_representative=representative
    )
    sni_routed = sni_name is not None and sniffed_names_reach_routing(config["inbounds"][0])
    decision = explain_route(
        config["routing"]["rules"], destination, geodata, sniffed=sni_name if sni_routed else None
    )
    outbound = decision.outbound or str(config["outbounds"][0]["tag"])
    labels = {f"preset-{preset.name}-{i}": r.label for i, r in enumerate(preset.rules, start=1)}
    meaning = _MEANING.get(outbound, outbound)
    if outbound == "foreign-pool" and not pool:
        meaning = "would be relayed to a foreign backend, but none is attached: it is refused (fail closed)"
    return RouteExplanation(
        server=server_name,
        destination=decision.destination,
        outbound=outbound,
        rule_tag=decision.rule_tag,
        rule=labels.get(decision.rule_tag or "", decision.rule_tag),
        matcher=decision.matcher,
        meaning=meaning,
        pool_empty=not pool,
        sni=sni_name,
        sni_routed=sni_routed,
    )
