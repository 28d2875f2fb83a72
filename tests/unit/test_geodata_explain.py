"""Route explanation over rule lists shaped like the rendered `ru` preset."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping

import pytest
from tests.support.cli import run_cli

from ovpn.geodata.dat import DomainRule, DomainType, GeodataError, write_geoip, write_geosite
from ovpn.geodata.explain import (
    RouteDecision,
    explain_route,
    parse_destination,
    parse_name,
    parse_port_list,
    sniffed_names_reach_routing,
)
from ovpn.geodata.match import GeodataSet, RoutingError

RU_RULES: list[Mapping[str, object]] = [
    {
        "type": "field",
        "domain": ["geosite:ru-available-only-inside"],
        "inboundTag": ["vless-reality"],
        "outboundTag": "direct",
        "ruleTag": "ru-inside",
    },
    {
        "type": "field",
        "domain": ["domain:ru", "domain:su", "domain:xn--p1ai"],
        "inboundTag": ["vless-reality"],
        "outboundTag": "direct",
        "ruleTag": "ru-suffix",
    },
    {"type": "field", "ip": ["geoip:ru"], "inboundTag": ["vless-reality"], "outboundTag": "direct"},
    {"type": "field", "ip": ["geoip:private"], "outboundTag": "direct", "ruleTag": "private"},
    {"inboundTag": ["vless-reality"], "outboundTag": "foreign-pool"},
]


@pytest.fixture(scope="module")
def geodata() -> GeodataSet:
    geosite = write_geosite(
        {
            "category-ads-all": [DomainRule(DomainType.DOMAIN, "ads.example")],
            "ru-available-only-inside": [
                DomainRule(DomainType.DOMAIN, "vk.com"),
                DomainRule(DomainType.FULL, "kino.example"),
                DomainRule(DomainType.DOMAIN, "gosuslugi.ru"),
            ],
        }
    )
    geoip = write_geoip(
        {
            "ru": ["77.88.0.0/18", "5.255.255.0/24", "2a02:6b8::/32"],
            "private": ["10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7", "::1/128"],
        }
    )
    return GeodataSet(geosite, geoip)


@pytest.mark.parametrize(
    ("destination", "shown", "index", "matcher"),
    [
        ("vk.com", "vk.com", 0, "geosite:ru-available-only-inside"),
        ("m.VK.com.", "m.vk.com", 0, "geosite:ru-available-only-inside"),
        ("kino.example", "kino.example", 0, "geosite:ru-available-only-inside"),
        ("www.gosuslugi.ru", "www.gosuslugi.ru", 0, "geosite:ru-available-only-inside"),  # first match wins
        ("yandex.ru", "yandex.ru", 1, "domain:ru"),
        ("forum.example.su", "forum.example.su", 1, "domain:su"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai", 1, "domain:xn--p1ai"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai", 1, "domain:xn--p1ai"),
        ("77.88.8.8", "77.88.8.8", 2, "geoip:ru"),
        ("2a02:6b8::1", "2a02:6b8::1", 2, "geoip:ru"),
        ("[2a02:6b8::2]", "2a02:6b8::2", 2, "geoip:ru"),
        ("::ffff:77.88.8.8", "77.88.8.8", 2, "geoip:ru"),
        ("10.1.2.3", "10.1.2.3", 3, "geoip:private"),
        ("fd12::1", "fd12::1", 3, "geoip:private"),
    ],
)
def test_direct_destinations(
    geodata: GeodataSet, destination: str, shown: str, index: int, matcher: str
) -> None:
    decision = explain_route(RU_RULES, destination, geodata)
    assert decision == RouteDecision(
        destination=shown,
        outbound="direct",
        rule_index=index,
        rule_tag=RU_RULES[index].get("ruleTag"),  # type: ignore[arg-type]
        matcher=matcher,
    )


@pytest.mark.parametrize(
    "destination",
    [
        "notru",  # not a suffix match for domain:ru
        "ru.com",
        "example.com",
        "notvk.com",
        "a.kino.example",  # full: does not cover subdomains
        "8.8.8.8",
        "2001:4860:4860::8888",
        "yandex.ru.example.com",
    ],
)
def test_foreign_destinations(geodata: GeodataSet, destination: str) -> None:
    decision = explain_route(RU_RULES, destination, geodata)
    assert decision.outbound == "foreign-pool"
    assert decision.rule_index == 4
    assert decision.matcher is None
    assert decision.rule_tag is None


def test_other_inbound_falls_through_to_no_rule(geodata: GeodataSet) -> None:
    # Only rule 3 (geoip:private) has no inboundTag condition.
    assert explain_route(RU_RULES, "yandex.ru", geodata, inbound_tag="api").outbound is None
    assert explain_route(RU_RULES, "77.88.8.8", geodata, inbound_tag="api") == RouteDecision(
        "77.88.8.8", None, None, None, None
    )
    decision = explain_route(RU_RULES, "192.168.1.1", geodata, inbound_tag="api")
    assert (decision.outbound, decision.rule_index, decision.rule_tag) == ("direct", 3, "private")


def test_as_is_domain_never_matches_ip_rules(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"ip": ["0.0.0.0/0", "::/0"], "outboundTag": "all-ips"}]
    assert explain_route(rules, "localhost", geodata).outbound is None
    assert explain_route(rules, "1.2.3.4", geodata).outbound == "all-ips"


def test_as_is_ip_never_matches_domain_rules(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"domain": ["keyword:"], "outboundTag": "all-domains"}]
    assert explain_route(rules, "1.2.3.4", geodata).outbound is None
    assert explain_route(rules, "example.com", geodata).outbound == "all-domains"


def test_rule_with_domain_and_ip_never_matches(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"domain": ["keyword:"], "ip": ["0.0.0.0/0"], "outboundTag": "x"}]
    assert explain_route(rules, "example.com", geodata).outbound is None
    assert explain_route(rules, "1.2.3.4", geodata).outbound is None


# --- sniffed names (issue 12, finding 11) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "sniffed", "outbound", "index"),
    [
        # What an inbound that sniffs with routeOnly does: the name decides, the connection still goes to the
        # client's destination. These are the spoofs finding 11 is about.
        ("8.8.8.8", "www.gosuslugi.ru", "direct", 0),
        ("8.8.8.8", "yandex.ru", "direct", 1),
        ("example.com", "yandex.ru", "direct", 1),  # the sniffed name outranks a domain destination
        # ip rules still see an IP destination, and a foreign sniffed name does not undo a direct domain.
        ("77.88.8.8", "example.com", "direct", 2),
        ("yandex.ru", "example.com", "foreign-pool", 4),
    ],
)
def test_a_sniffed_name_meets_the_domain_rules_and_an_ip_destination_the_ip_rules(
    geodata: GeodataSet, destination: str, sniffed: str, outbound: str, index: int
) -> None:
    decision = explain_route(RU_RULES, destination, geodata, sniffed=sniffed.upper() + ".")
    assert (decision.outbound, decision.rule_index, decision.sniffed) == (outbound, index, sniffed)


def test_without_a_sniffed_name_the_destination_alone_decides(geodata: GeodataSet) -> None:
    assert explain_route(RU_RULES, "8.8.8.8", geodata).outbound == "foreign-pool"
    assert explain_route(RU_RULES, "8.8.8.8", geodata).sniffed is None


def test_a_rule_with_domain_and_ip_matches_an_ip_destination_with_a_sniffed_name(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"domain": ["domain:ru"], "ip": ["geoip:ru"], "outboundTag": "both"}]
    assert explain_route(rules, "77.88.8.8", geodata, sniffed="mail.ru").outbound == "both"
    assert explain_route(rules, "8.8.8.8", geodata, sniffed="mail.ru").outbound is None
    assert explain_route(rules, "77.88.8.8", geodata).outbound is None


@pytest.mark.parametrize(
    ("sniffing", "reaches"),
    [
        ({"enabled": True, "destOverride": ["http", "tls", "quic"], "routeOnly": True}, True),
        ({"enabled": True, "destOverride": ["tls"], "routeOnly": True}, True),
        ({"enabled": False, "destOverride": ["http", "tls"], "routeOnly": True}, False),
        ({"enabled": False}, False),
        (None, False),
        ({"enabled": True, "destOverride": ["fakedns"], "routeOnly": True}, False),
    ],
)
def test_which_inbounds_let_a_sniffed_name_reach_routing(sniffing: object, reaches: bool) -> None:
    inbound = {"tag": "vless-reality"} if sniffing is None else {"tag": "vless-reality", "sniffing": sniffing}
    assert sniffed_names_reach_routing(inbound) is reaches


def test_sniffing_that_rewrites_the_destination_is_not_modelled() -> None:
    inbound = {"sniffing": {"enabled": True, "destOverride": ["tls"]}}
    with pytest.raises(RoutingError, match="without routeOnly"):
        sniffed_names_reach_routing(inbound)


@pytest.mark.parametrize(("text", "message"), [("1.2.3.4", "is an IP address"), ("bad name", "bad label")])
def test_a_sniffed_name_must_be_a_host_name(geodata: GeodataSet, text: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_name(text)
    with pytest.raises(RoutingError, match=message):
        explain_route(RU_RULES, "8.8.8.8", geodata, sniffed=text)


@pytest.mark.parametrize(
    ("destination", "sni", "outbound", "rule"),
    [
        ("1.2.3.4", "www.gosuslugi.ru", "foreign-pool", "foreign-catch-all"),
        ("1.2.3.4", "mail.ru", "foreign-pool", "foreign-catch-all"),
        ("google.com", "www.gosuslugi.ru", "foreign-pool", "foreign-catch-all"),
        ("95.167.1.1", "www.gosuslugi.ru", "direct", "geoip:ru"),
        ("mail.ru", "google.com", "direct", "suffix .ru/.su/.xn--p1ai"),
    ],
)
def test_route_explain_sni_models_the_rendered_proxy(
    seeded: object, capsys: pytest.CaptureFixture[str], destination: str, sni: str, outbound: str, rule: str
) -> None:
    """The rendered proxy does not sniff, so the destination decides whatever name the client sends."""
    code, out, err = run_cli(capsys, "route", "explain", "--server", "proxy-ru", destination, "--sni", sni,
                             "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["outbound"], result["rule"], result["sni"], result["sni_routed"]) == (
        outbound,
        rule,
        sni,
        False,
    )


def test_route_explain_sni_says_why_in_text(seeded: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "route", "explain", "--server", "proxy-ru", "1.2.3.4", "--sni", "www.gosuslugi.ru"
    )
    assert code == 0
    assert out.splitlines()[:2] == [
        "1.2.3.4: foreign-pool",
        "  sni:     www.gosuslugi.ru (not used: the proxy decides by the destination, never by a sniffed name)",
    ]


def test_route_explain_refuses_an_address_as_sni(seeded: object, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "route", "explain", "--server", "proxy-ru", "1.2.3.4", "--sni", "5.6.7.8"
    )
    assert (code, out) == (1, "")
    assert err.startswith("error: sniffed name '5.6.7.8' is an IP address\nhint: ")


@pytest.mark.parametrize(
    ("spec", "port", "expected"),
    [
        ("443", 443, True),
        ("443", 80, False),
        (443, 443, True),
        ("1000-2000", 1500, True),
        ("1000-2000", 2001, False),
        ("53,443", 53, True),
        ("53, 443", 443, True),
        ("53,443", 80, False),
        ("53,1000-2000", 1000, True),
    ],
)
def test_port_conditions(geodata: GeodataSet, spec: object, port: int, expected: bool) -> None:
    rules: list[Mapping[str, object]] = [{"port": spec, "outboundTag": "p"}]
    assert (explain_route(rules, "example.com", geodata, port=port).outbound == "p") is expected


@pytest.mark.parametrize("spec", ["", "abc", "2000-1000", "70000", "1-2-3", True, 1.5])
def test_bad_ports(spec: object) -> None:
    with pytest.raises(RoutingError):
        parse_port_list(spec)


def test_network_condition(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [
        {"network": "udp", "outboundTag": "u"},
        {"network": "tcp,udp", "outboundTag": "any"},
    ]
    assert explain_route(rules, "example.com", geodata).outbound == "any"
    assert explain_route(rules, "example.com", geodata, network="udp").outbound == "u"


def test_balancer_and_rule_tag(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [
        {"domain": ["full:a.example"], "balancerTag": "pool", "ruleTag": "to-pool"},
        {"domain": ["full:b.example"], "balancerTag": "pool", "outboundTag": "direct"},
    ]
    assert explain_route(rules, "a.example", geodata) == RouteDecision(
        "a.example", "pool", 0, "to-pool", "full:a.example", balancer=True
    )
    decision = explain_route(rules, "b.example", geodata)
    assert (decision.outbound, decision.balancer) == ("direct", False)


def test_inbound_tag_may_be_a_single_string(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"inboundTag": "vless-reality", "outboundTag": "x"}]
    assert explain_route(rules, "example.com", geodata).outbound == "x"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"sourceIP": ["10.0.0.0/8"], "outboundTag": "x"}, "sourceIP"),
        ({"domain": ["domain:ru"], "protocol": ["tls"], "outboundTag": "x"}, "protocol"),
        ({"type": "chinasites", "domain": ["ru"], "outboundTag": "x"}, 'not "field"'),
        ({"domain": ["domain:ru"]}, "neither outboundTag nor balancerTag"),
        ({"outboundTag": "x", "ruleTag": "t"}, "no condition"),
        ({"domain": "domain:ru", "outboundTag": 5}, "outboundTag must be a string"),
    ],
)
def test_bad_rules_are_rejected_even_after_the_match(
    geodata: GeodataSet, rule: dict[str, object], message: str
) -> None:
    rules: list[Mapping[str, object]] = [{"domain": ["keyword:"], "outboundTag": "first"}, rule]
    with pytest.raises(RoutingError, match=message):
        explain_route(rules, "example.com", geodata)


def test_bad_field_values(geodata: GeodataSet) -> None:
    with pytest.raises(RoutingError, match="list of strings"):
        explain_route([{"domain": [1], "outboundTag": "x"}], "example.com", geodata)
    with pytest.raises(RoutingError, match="unknown network"):
        explain_route([{"network": "sctp", "outboundTag": "x"}], "example.com", geodata)
    with pytest.raises(RoutingError, match="out of range"):
        explain_route(RU_RULES, "example.com", geodata, port=70000)


def test_missing_category_is_a_geodata_error(geodata: GeodataSet) -> None:
    rules: list[Mapping[str, object]] = [{"domain": ["geosite:ru-blocked"], "outboundTag": "x"}]
    with pytest.raises(GeodataError, match=re.escape('"ru-blocked" is not in geosite.dat')):
        explain_route(rules, "example.com", geodata)


# --- parse_destination --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM.", "example.com"),
        ("  example.com ", "example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("ПРИМЕР.РФ.", "xn--e1afmkfd.xn--p1ai"),
        ("localhost", "localhost"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("192.0.2.1", ipaddress.ip_address("192.0.2.1")),
        ("2001:DB8::1", ipaddress.ip_address("2001:db8::1")),
        ("[::1]", ipaddress.ip_address("::1")),
        ("::ffff:192.0.2.1", ipaddress.ip_address("192.0.2.1")),
    ],
)
def test_parse_destination(text: str, expected: object) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://example.com/", "not a host name"),
        ("example.com/path", "not a host name"),
        ("example.com:443", "without a port"),
        ("exa mple.com", "bad label"),
        ("a..b", "not a valid host name"),
        ("-a.example", "bad label"),
        ("a" * 64 + ".example", "not a valid host name"),
        (".".join(["a" * 60] * 5), "longer than 253"),
        ("1.2.3.256", "looks like an IP"),
        ("ex@mple.com", "bad label"),
    ],
)
def test_parse_destination_rejects_junk(text: str, message: str) -> None:
    with pytest.raises(RoutingError) as info:
        parse_destination(text)
    assert message in f"{info.value.message} {info.value.hint}"
