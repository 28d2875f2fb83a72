"""Xray's matching semantics: geosite rule types, config matcher strings, geoip, GeodataSet."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovpn.geodata.dat import DomainRule, DomainType, GeodataError, GeoIPCategory, write_geoip, write_geosite
from ovpn.geodata.match import (
    DomainRuleSet,
    GeodataSet,
    IPRangeSet,
    RoutingError,
    domain_rule_matches,
    matcher_matches_domain,
    matcher_matches_ip,
)

D = DomainType
ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("rule", "domain", "expected"),
    [
        (DomainRule(D.DOMAIN, "ru"), "ru", True),
        (DomainRule(D.DOMAIN, "ru"), "yandex.ru", True),
        (DomainRule(D.DOMAIN, "ru"), "a.b.yandex.ru", True),
        (DomainRule(D.DOMAIN, "ru"), "YANDEX.RU.", True),
        (DomainRule(D.DOMAIN, "ru"), "notru", False),
        (DomainRule(D.DOMAIN, "ru"), "yandex.notru", False),
        (DomainRule(D.DOMAIN, "ru"), "ru.com", False),
        (DomainRule(D.DOMAIN, "xn--p1ai"), "xn--e1afmkfd.xn--p1ai", True),
        (DomainRule(D.DOMAIN, "xn--p1ai"), "xn--p1ai.com", False),
        (DomainRule(D.DOMAIN, "vk.com"), "vk.com", True),
        (DomainRule(D.DOMAIN, "vk.com"), "m.vk.com", True),
        (DomainRule(D.DOMAIN, "vk.com"), "notvk.com", False),
        (DomainRule(D.FULL, "vk.com"), "vk.com", True),
        (DomainRule(D.FULL, "vk.com"), "m.vk.com", False),
        (DomainRule(D.FULL, "vk.com"), "VK.com.", True),
        (DomainRule(D.PLAIN, "ru"), "notru", True),
        (DomainRule(D.PLAIN, "ru"), "truck.com", True),
        (DomainRule(D.PLAIN, "ru"), "example.com", False),
        (DomainRule(D.PLAIN, ""), "anything", True),
        (DomainRule(D.REGEX, r"^api\.[a-z]+\.ru$"), "api.yandex.ru", True),
        (DomainRule(D.REGEX, r"^api\.[a-z]+\.ru$"), "x.api.yandex.ru", False),
        (DomainRule(D.REGEX, r"yandex"), "API.YANDEX.RU", True),  # domains are lower-cased first
    ],
)
def test_domain_rule_matches(rule: DomainRule, domain: str, expected: bool) -> None:
    assert domain_rule_matches(rule, domain) is expected
    assert DomainRuleSet([rule]).matches(domain) is expected


def _no_geosite(code: str) -> list[DomainRule] | None:
    return None


@pytest.mark.parametrize(
    ("matcher", "domain", "expected"),
    [
        ("domain:ru", "notru", False),
        ("domain:ru", "mail.ru", True),
        ("keyword:ru", "notru", True),
        ("ru", "notru", True),  # a plain string is a substring
        ("ru", "example.com", False),
        ("full:mail.ru", "mail.ru", True),
        ("full:mail.ru", "e.mail.ru", False),
        ("regexp:\\.ru$", "mail.ru", True),
        ("regexp:\\.ru$", "mail.ru.com", False),
        ("domain:xn--p1ai", "xn--80ak6aa92e.xn--p1ai", True),
        ("domain:xn--p1ai", "xn--p1ai", True),
        ("domain:xn--p1ai", "axn--p1ai", False),
        ("dotless:", "localhost", True),
        ("dotless:", "local.host", False),
        ("dotless:host", "myhost", True),
        ("dotless:host", "my.host", False),
        ("dotless:host", "router", False),
        ("Domain:RU", "mail.ru", False),  # unknown prefix: the whole string is a substring
    ],
)
def test_matcher_matches_domain(matcher: str, domain: str, expected: bool) -> None:
    assert matcher_matches_domain(matcher, domain, _no_geosite) is expected


def test_geosite_matcher_with_a_lookup_function() -> None:
    calls: list[str] = []

    def lookup(code: str) -> list[DomainRule] | None:
        calls.append(code)
        return [DomainRule(D.DOMAIN, "vk.com")] if code.upper() == "RU-INSIDE" else None

    assert matcher_matches_domain("geosite:ru-inside", "m.vk.com", lookup)
    assert not matcher_matches_domain("geosite:ru-inside", "notvk.com", lookup)
    assert calls == ["ru-inside", "ru-inside"]
    with pytest.raises(GeodataError, match='"other"'):
        matcher_matches_domain("geosite:other", "vk.com", lookup)


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ("geosite:ru@ads", "attribute"),
        ("geosite:", "names no geosite category"),
        ("ext:custom.dat:tag", "ext:"),
        ("dotless:a.b", "must not contain a dot"),
        ("regexp:(", "invalid regular expression"),
    ],
)
def test_unsupported_or_invalid_domain_matchers(matcher: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        matcher_matches_domain(matcher, "example.com", _no_geosite)


def _geoip(code: str) -> GeoIPCategory | None:
    table = {
        "RU": GeoIPCategory((ipaddress.ip_network("77.88.0.0/18"), ipaddress.ip_network("2a02:6b8::/32"))),
        "NOT-RU": GeoIPCategory((ipaddress.ip_network("77.88.0.0/18"),), reverse_match=True),
    }
    return table.get(code.upper())


@pytest.mark.parametrize(
    ("matcher", "address", "expected"),
    [
        ("10.0.0.0/8", "10.255.1.2", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "::ffff:a00:1", False),  # an IPv6 address never matches an IPv4 network
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("2001:db8::/32", "2001:db8:ffff::1", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("2001:db8::/32", "32.1.13.184", False),
        ("::1", "::1", True),
        ("geoip:ru", "77.88.8.8", True),
        ("geoip:RU", "2a02:6b8::feed", True),
        ("geoip:ru", "8.8.8.8", False),
        ("geoip:not-ru", "77.88.8.8", False),  # reverse_match inverts the category
        ("geoip:not-ru", "8.8.8.8", True),
        ("geoip:not-ru", "2001:db8::1", True),
    ],
)
def test_matcher_matches_ip(matcher: str, address: str, expected: bool) -> None:
    assert matcher_matches_ip(matcher, ip(address), _geoip) is expected


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        ("!geoip:ru", "negation"),
        ("geoip:!ru", "negation"),
        ("geoip:", "names no geoip category"),
        ("ext:ip.dat:tag", "ext:"),
        ("10.0.0.0/33", "neither geoip"),
        ("example.com", "neither geoip"),
    ],
)
def test_unsupported_or_invalid_ip_matchers(matcher: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message):
        matcher_matches_ip(matcher, ip("10.0.0.1"), _geoip)


def test_missing_geoip_category_from_a_lookup_function() -> None:
    with pytest.raises(GeodataError, match=re.escape('"cn" is not in geoip.dat')):
        matcher_matches_ip("geoip:cn", ip("1.1.1.1"), _geoip)


# --- GeodataSet ---------------------------------------------------------------------------------------------


def _set() -> GeodataSet:
    geosite = write_geosite(
        {
            "ru-available-only-inside": [DomainRule(D.DOMAIN, "vk.com"), DomainRule(D.FULL, "kino.example")],
            "private": [DomainRule(D.DOMAIN, "lan")],
        }
    )
    geoip = write_geoip({"ru": ["77.88.0.0/18", "2a02:6b8::/32"], "private": ["10.0.0.0/8", "fc00::/7"]})
    return GeodataSet(geosite, geoip, geoip_name="/srv/geoip-custom.dat")


def test_geodata_set_matches_and_caches() -> None:
    geodata = _set()
    assert matcher_matches_domain("geosite:ru-available-only-inside", "m.vk.com", geodata)
    assert matcher_matches_domain("geosite:RU-AVAILABLE-ONLY-INSIDE", "kino.example", geodata)
    assert not matcher_matches_domain("geosite:ru-available-only-inside", "a.kino.example", geodata)
    assert matcher_matches_ip("geoip:private", ip("fd00::1"), geodata)
    assert not matcher_matches_ip("geoip:ru", ip("10.0.0.1"), geodata)
    assert geodata.domain_set("private") is geodata.domain_set("PRIVATE")
    assert geodata.ip_set("ru") is geodata.ip_set("Ru")
    assert geodata.geosite("private") == [DomainRule(D.DOMAIN, "lan")]
    assert geodata.geoip("ru").cidrs[1] == ipaddress.ip_network("2a02:6b8::/32")
    assert geodata.geosite_codes() == ["RU-AVAILABLE-ONLY-INSIDE", "PRIVATE"]
    assert geodata.geoip_codes() == ["RU", "PRIVATE"]


def test_geodata_set_missing_category_names_category_and_file() -> None:
    geodata = _set()
    with pytest.raises(GeodataError) as info:
        geodata.geosite("category-ads-all")
    assert info.value.message == 'category "category-ads-all" is not in geosite.dat'
    with pytest.raises(GeodataError, match=re.escape('"cn" is not in /srv/geoip-custom.dat')):
        matcher_matches_ip("geoip:cn", ip("1.1.1.1"), geodata)


def test_missing_categories() -> None:
    geodata = _set()
    assert geodata.missing_categories(["ru-available-only-inside", "private"], ["ru", "PRIVATE"]) == []
    assert geodata.missing_categories(["ru-blocked", "private@ads", "nope@x"], ["ru", "cn"]) == [
        'category "ru-blocked" is not in geosite.dat',
        'category "nope" is not in geosite.dat',
        'category "cn" is not in /srv/geoip-custom.dat',
    ]


def test_geodata_set_does_not_decode_until_asked() -> None:
    # A broken category that is never looked up does not get in the way.
    broken = bytes([0x0A, 0x09, 0x0A, 0x03]) + b"BAD" + bytes([0x12, 0x02, 0x12, 0x05])
    geodata = GeodataSet(broken + write_geosite({"ok": [DomainRule(D.FULL, "ok.example")]}), b"")
    assert matcher_matches_domain("geosite:ok", "ok.example", geodata)
    with pytest.raises(GeodataError):
        geodata.geosite("bad")


# --- Properties ---------------------------------------------------------------------------------------------

labels = st.sampled_from(["ru", "vk", "com", "xn--p1ai", "a", "mail", "notru", "example"])
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
plain_rules = st.builds(
    DomainRule, st.sampled_from([D.PLAIN, D.DOMAIN, D.FULL]), st.one_of(domains, labels, st.just(""))
)


@given(st.lists(plain_rules, max_size=6), domains)
def test_rule_set_agrees_with_single_rules(rules: list[DomainRule], domain: str) -> None:
    assert DomainRuleSet(rules).matches(domain) == any(domain_rule_matches(r, domain) for r in rules)


def _net(data: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]) -> str:
    address, prefix = data
    return str(ipaddress.ip_network((address, prefix % (address.max_prefixlen + 1)), strict=False))


@given(
    st.lists(st.tuples(st.ip_addresses(), st.integers(0, 128)).map(_net), max_size=8),
    st.ip_addresses(),
    st.booleans(),
)
def test_ip_range_set_agrees_with_networks(
    cidrs: list[str], address: ipaddress.IPv4Address | ipaddress.IPv6Address, reverse: bool
) -> None:
    nets = tuple(ipaddress.ip_network(c) for c in cidrs)
    expected = any(n.version == address.version and address in n for n in nets)
    assert IPRangeSet(GeoIPCategory(nets, reverse)).matches(address) == (expected != reverse)
    assert any(matcher_matches_ip(c, address, _geoip) for c in cidrs) == expected
