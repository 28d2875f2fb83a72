"""Properties of rendered bundles that must hold for any state, not just the golden one."""

import dataclasses
import functools
import ipaddress
import json
import re
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.topology import BACKEND_1, BACKEND_2, NOW, PROXY, SOLO, lab_geodata, request

from ovpn.core.model import RELAY_EMAIL, PoolMember, Server, User
from ovpn.core.presets import PRESETS
from ovpn.errors import OvpnError
from ovpn.geodata.explain import explain_route, sniffed_names_reach_routing
from ovpn.geodata.match import GeodataSet
from ovpn.render.haproxy import render_haproxy_config
from ovpn.render.server_bundle import render_server_bundle

users_strategy = st.lists(
    st.builds(
        lambda i, enabled, expiry_offset: User(
            username=f"user{i}",
            uuid=f"00000000-0000-4000-8000-{i:012d}",
            email=f"user{i}@global",
            enabled=enabled,
            expiry=None if expiry_offset is None else (NOW + timedelta(days=expiry_offset)).date(),
        ),
        st.integers(0, 10_000),
        st.booleans(),
        st.one_of(st.none(), st.integers(-3, 3)),
    ),
    unique_by=lambda u: u.username,
    max_size=30,
)


def config_of(server: object, users: list[User]) -> dict[str, object]:
    bundle = render_server_bundle(dataclasses.replace(request(server), users=users))  # type: ignore[arg-type]
    return json.loads(bundle["xray/config.json"].content)  # type: ignore[no-any-return]


@functools.cache
def config_without_users(server: Server) -> dict[str, object]:
    """`config_of(server, [])`, rendered once per server for the tests that only read it."""
    return config_of(server, [])


def clients(config: dict[str, object]) -> list[str]:
    return [c["email"] for c in config["inbounds"][0]["settings"]["clients"]]  # type: ignore[index]


# Each example renders three whole bundles (mostly the monitoring YAML, which this property does not read); 20
# lists of up to 30 users cover every (enabled, expiry before / on / after today, none) combination many times.
@settings(deadline=None, max_examples=20)
@given(users_strategy)
def test_exactly_the_active_users_are_admitted_and_the_relay_only_on_attached_backends(
    users: list[User],
) -> None:
    active = sorted(u.email for u in users if u.is_active(NOW))
    assert clients(config_of(SOLO, users)) == active
    assert clients(config_of(PROXY, users)) == active
    assert clients(config_of(BACKEND_1, users)) == sorted([*active, RELAY_EMAIL])


def test_expiry_today_is_still_admitted_and_yesterday_is_not() -> None:
    today = User("t", "00000000-0000-4000-8000-000000000001", "t@global", expiry=NOW.date())
    yesterday = User("y", "00000000-0000-4000-8000-000000000002", "y@global", expiry=date(2026, 11, 24))
    assert clients(config_of(SOLO, [today, yesterday])) == ["t@global"]


def test_proxy_routes_preset_rules_in_order_then_everything_foreign() -> None:
    config = config_without_users(PROXY)
    rules = config["routing"]["rules"]  # type: ignore[index]
    preset = PRESETS["ru"]
    preset_rules = [r for r in rules if r["outboundTag"] == "direct"]
    assert [r.get("domain", r.get("ip")) for r in preset_rules] == [list(p.matchers) for p in preset.rules]
    assert rules[-1] == {"type": "field", "inboundTag": ["vless-reality"], "outboundTag": "foreign-pool",
                         "ruleTag": "foreign-catch-all"}  # fmt: skip
    assert config["outbounds"][0]["tag"] == "foreign-pool"  # type: ignore[index]
    assert config["routing"]["domainStrategy"] == "AsIs"  # type: ignore[index]


@pytest.mark.parametrize("server", [PROXY, SOLO, BACKEND_1], ids=lambda s: s.name)
def test_no_server_routes_by_a_sniffed_name(server: Server) -> None:
    """Issue 12 finding 11: with sniffing, a name in the SNI or Host would decide where a connection goes."""
    inbound = config_without_users(server)["inbounds"][0]  # type: ignore[index]
    assert inbound["sniffing"] == {"enabled": False}
    assert not sniffed_names_reach_routing(inbound)


_LAB_GEODATA = lab_geodata()
_DIRECT_IPV4 = [ipaddress.ip_network(n) for n in ("95.167.0.0/16", "10.0.0.0/8", "172.16.0.0/12",
                                                  "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                                                  "0.0.0.0/8")]  # fmt: skip


@settings(deadline=None, max_examples=200)
@given(
    address=st.ip_addresses(v=4).filter(lambda ip: not any(ip in net for net in _DIRECT_IPV4)),
    name=st.sampled_from(["www.gosuslugi.ru", "kinopoisk.com", "mail.ru", "forum.example.su", "xn--p1ai"]),
    port=st.sampled_from([80, 443, 8443]),
)
def test_a_foreign_address_goes_to_the_relay_whatever_name_the_client_sends(
    address: ipaddress.IPv4Address, name: str, port: int
) -> None:
    """The proxy's rendered routing, as Xray evaluates it, never sends an address outside the direct ranges
    out directly, whatever Russian name the connection carries in its SNI or Host."""
    config = config_without_users(PROXY)
    geodata = GeodataSet(_LAB_GEODATA.geosite, _LAB_GEODATA.geoip)
    sniffed = name if sniffed_names_reach_routing(config["inbounds"][0]) else None  # type: ignore[index]
    decision = explain_route(config["routing"]["rules"], str(address), geodata, port=port, sniffed=sniffed)  # type: ignore[index]
    assert (decision.outbound, decision.rule_tag) == ("foreign-pool", "foreign-catch-all")


@pytest.mark.parametrize("server", [PROXY, SOLO, BACKEND_1], ids=lambda s: s.name)
@pytest.mark.parametrize("address", ["0.0.0.0", "0.1.2.3", "127.0.0.1", "169.254.169.254", "::", "::1"])
def test_every_address_of_the_host_itself_is_blocked(server: Server, address: str) -> None:
    """`0.0.0.0` and `::` are this host to a Linux connect(), like loopback (seen in the data-plane lab)."""
    config = config_without_users(server)
    geodata = GeodataSet(_LAB_GEODATA.geosite, _LAB_GEODATA.geoip)
    decision = explain_route(config["routing"]["rules"], address, geodata, port=10085)  # type: ignore[index]
    assert (decision.outbound, decision.rule_tag) == ("block", "guard-loopback")


@pytest.mark.parametrize("server", [PROXY, SOLO, BACKEND_1], ids=lambda s: s.name)
def test_direct_dials_names_only_through_a_resolver_that_drops_the_host_itself(server: Server) -> None:
    """Routing never resolves a name (`AsIs`), so `direct` must not connect a name whose DNS says 127.0.0.1."""
    config = config_without_users(server)
    guard = next(r for r in config["routing"]["rules"] if r["ruleTag"] == "guard-loopback")  # type: ignore[index]
    assert config["dns"] == {"servers": [{"address": "localhost", "unexpectedIPs": guard["ip"]}]}
    direct = next(o for o in config["outbounds"] if o["tag"] == "direct")  # type: ignore[attr-defined]
    # ForceIPv4: a name left without an address fails; UseIPv4 would hand it to the system resolver instead.
    assert direct["settings"] == {"domainStrategy": "ForceIPv4"}


def test_vpn_servers_send_everything_direct_except_the_host_guards() -> None:
    config = config_without_users(SOLO)
    assert [o["tag"] for o in config["outbounds"]] == ["direct", "block"]  # type: ignore[attr-defined]
    assert {r["outboundTag"] for r in config["routing"]["rules"]} == {"block"}  # type: ignore[index]


def test_render_refuses_a_pool_out_of_parity() -> None:
    odd = dataclasses.replace(BACKEND_2, reality_server_name="www.apple.com")
    req = dataclasses.replace(request(PROXY), pool=(PoolMember(BACKEND_1, 100), PoolMember(odd, 100)))
    with pytest.raises(
        OvpnError,
        match=re.escape("REALITY server name differs: vpn-de=www.apple.com, vpn-nl=www.microsoft.com"),
    ):
        render_server_bundle(req)


def test_render_refuses_an_attached_backend_without_relay_identity() -> None:
    bare = dataclasses.replace(BACKEND_1, relay_uuid=None)
    with pytest.raises(OvpnError, match="has no relay identity"):
        render_server_bundle(dataclasses.replace(request(BACKEND_1), server=bare))


@given(st.lists(st.integers(0, 300), min_size=1, max_size=8))
def test_haproxy_lists_backends_by_priority_and_only_the_best_are_active(priorities: list[int]) -> None:
    pool = [
        PoolMember(dataclasses.replace(BACKEND_1, name=f"vpn-{i}", host=f"203.0.113.{i + 1}"), p)
        for i, p in enumerate(priorities)
    ]
    lines = re.findall(r"^    server (\S+) \S+ check( backup)?$", render_haproxy_config(pool), re.M)
    expected = sorted(pool, key=lambda m: (m.priority, m.server.name))
    assert [name for name, _ in lines] == [m.server.name for m in expected]
    best = min(priorities)
    assert [bool(backup) for _, backup in lines] == [m.priority != best for m in expected]
