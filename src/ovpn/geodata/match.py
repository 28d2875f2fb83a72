"""Xray's domain and IP matching semantics, without I/O.

`domain_rule_matches` follows the geosite `Domain.Type` meanings; `matcher_matches_domain` and
`matcher_matches_ip` take the matcher strings of a routing rule exactly as they appear in config.json.
`GeodataSet` wraps the bytes of one geosite.dat and one geoip.dat and decodes categories on first use.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

from ovpn.errors import OvpnError
from ovpn.geodata.dat import (
    DomainRule,
    DomainType,
    GeodataError,
    GeoIPCategory,
    IPNetwork,
    list_codes,
    read_geoip_category,
    read_geosite_category,
)

T = TypeVar("T")

__all__ = [
    "DomainRuleSet",
    "GeodataSet",
    "GeoipLookup",
    "GeositeLookup",
    "IPAddress",
    "IPRangeSet",
    "RoutingError",
    "domain_rule_matches",
    "matcher_matches_domain",
    "matcher_matches_ip",
    "normalize_domain",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

GeositeLookup = Callable[[str], Sequence[DomainRule] | None]
"""A function from a geosite code to its rules, or None when the category does not exist."""

GeoipLookup = Callable[[str], GeoIPCategory | None]
"""A function from a geoip code to its category, or None when the category does not exist."""


class RoutingError(OvpnError):
    """A routing rule or matcher that is invalid, or valid in Xray but not supported here."""


def normalize_domain(domain: str) -> str:
    """Lower-case, without one trailing dot: the form every comparison here uses."""
    return domain.lower().removesuffix(".")


@lru_cache(maxsize=4096)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RoutingError(f"invalid regular expression {pattern!r}: {exc}") from exc


def domain_rule_matches(rule: DomainRule, domain: str) -> bool:
    """Whether one geosite rule matches `domain`.

    PLAIN is a substring, REGEX a `re.search`, DOMAIN the value itself or a subdomain of it, FULL exact.
    """
    name = normalize_domain(domain)
    kind = rule.type
    if kind == DomainType.REGEX:
        return _compile_regex(rule.value).search(name) is not None
    value = rule.value.lower()
    if kind == DomainType.PLAIN:
        return value in name
    if kind == DomainType.DOMAIN:
        return name == value or name.endswith("." + value)
    if kind == DomainType.FULL:
        return name == value
    raise RoutingError(f"unknown domain rule type {kind!r}")


class DomainRuleSet:
    """A geosite category prepared for repeated lookups: hash sets for FULL and DOMAIN rules."""

    def __init__(self, rules: Iterable[DomainRule]) -> None:
        self._full: set[str] = set()
        self._suffix: set[str] = set()
        self._substrings: list[str] = []
        self._regexes: list[re.Pattern[str]] = []
        for rule in rules:
            if rule.type == DomainType.FULL:
                self._full.add(rule.value.lower())
            elif rule.type == DomainType.DOMAIN:
                self._suffix.add(rule.value.lower())
            elif rule.type == DomainType.PLAIN:
                self._substrings.append(rule.value.lower())
            elif rule.type == DomainType.REGEX:
                self._regexes.append(_compile_regex(rule.value))
            else:
                raise RoutingError(f"unknown domain rule type {rule.type!r}")

    def matches(self, domain: str) -> bool:
        name = normalize_domain(domain)
        if name in self._full:
            return True
        if self._suffix:
            tail = name
            while True:
                if tail in self._suffix:
                    return True
                dot = tail.find(".")
                if dot < 0:
                    break
                tail = tail[dot + 1 :]
        if any(part in name for part in self._substrings):
            return True
        return any(regex.search(name) for regex in self._regexes)


class IPRangeSet:
    """A geoip category prepared for lookups: merged, sorted address ranges per IP version."""

    def __init__(self, category: GeoIPCategory) -> None:
        self.reverse_match = category.reverse_match
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for network in category.cidrs:
            spans[network.version].append((int(network.network_address), int(network.broadcast_address)))
        for version, items in spans.items():
            items.sort()
            starts: list[int] = []
            ends: list[int] = []
            for start, end in items:
                if ends and start <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], end)
                else:
                    starts.append(start)
                    ends.append(end)
            self._starts[version] = starts
            self._ends[version] = ends

    def contains(self, ip: IPAddress) -> bool:
        """Whether `ip` is in one of the networks, ignoring `reverse_match`."""
        value = int(ip)
        starts = self._starts[ip.version]
        index = bisect.bisect_right(starts, value) - 1
        return index >= 0 and value <= self._ends[ip.version][index]

    def matches(self, ip: IPAddress) -> bool:
        """Whether the category matches `ip`, honouring `reverse_match`."""
        return self.contains(ip) != self.reverse_match


class GeodataSet:
    """One geosite.dat and one geoip.dat, held as bytes; categories are decoded once, on first use."""

    def __init__(
        self,
        geosite: bytes,
        geoip: bytes,
        geosite_name: str = "geosite.dat",
        geoip_name: str = "geoip.dat",
    ) -> None:
        self._geosite_data = geosite
        self._geoip_data = geoip
        self.geosite_name = geosite_name
        self.geoip_name = geoip_name
        self._geosite_codes: list[str] | None = None
        self._geoip_codes: list[str] | None = None
        self._sites: dict[str, list[DomainRule]] = {}
        self._ips: dict[str, GeoIPCategory] = {}
        self._site_sets: dict[str, DomainRuleSet] = {}
        self._ip_sets: dict[str, IPRangeSet] = {}

    def geosite_codes(self) -> list[str]:
        if self._geosite_codes is None:
            self._geosite_codes = list_codes(self._geosite_data)
        return list(self._geosite_codes)

    def geoip_codes(self) -> list[str]:
        if self._geoip_codes is None:
            self._geoip_codes = list_codes(self._geoip_data)
        return list(self._geoip_codes)

    def _missing(self, code: str, file_name: str) -> GeodataError:
        return GeodataError(
            f'category "{code}" is not in {file_name}',
            hint=f"check the category name, or use a {file_name} that has it",
        )

    def geosite(self, code: str) -> list[DomainRule]:
        """The rules of a geosite category; GeodataError if the file does not have it."""
        key = code.upper()
        rules = self._sites.get(key)
        if rules is None:
            found = read_geosite_category(self._geosite_data, key)
            if found is None:
                raise self._missing(code, self.geosite_name)
            rules = self._sites[key] = found
        return list(rules)

    def geoip(self, code: str) -> GeoIPCategory:
        """A geoip category; GeodataError if the file does not have it."""
        key = code.upper()
        category = self._ips.get(key)
        if category is None:
            found = read_geoip_category(self._geoip_data, key)
            if found is None:
                raise self._missing(code, self.geoip_name)
            category = self._ips[key] = found
        return category

    def domain_set(self, code: str) -> DomainRuleSet:
        key = code.upper()
        prepared = self._site_sets.get(key)
        if prepared is None:
            prepared = self._site_sets[key] = DomainRuleSet(self.geosite(code))
        return prepared

    def ip_set(self, code: str) -> IPRangeSet:
        key = code.upper()
        prepared = self._ip_sets.get(key)
        if prepared is None:
            prepared = self._ip_sets[key] = IPRangeSet(self.geoip(code))
        return prepared

    def missing_categories(self, geosite_codes: Iterable[str], geoip_codes: Iterable[str]) -> list[str]:
        """Human-readable problems, one per category (without `geosite:`/`geoip:`) the files lack."""
        problems: list[str] = []
        for wanted, present, name in (
            (geosite_codes, set(self.geosite_codes()), self.geosite_name),
            (geoip_codes, set(self.geoip_codes()), self.geoip_name),
        ):
            for code in wanted:
                base = code.split("@", 1)[0]
                if base.upper() not in present:
                    problems.append(f'category "{base}" is not in {name}')
        return problems


# --- Config matcher strings --------------------------------------------------------------------------------


def _unsupported(matcher: str, what: str) -> RoutingError:
    return RoutingError(
        f"matcher {matcher!r}: {what} is valid in Xray but not supported by route explanation",
        hint="explain the route by hand, or rewrite the rule without it",
    )


# Matcher prefixes that stand for one geosite rule of a type.
_RULE_PREFIXES = {
    "domain": DomainType.DOMAIN,
    "full": DomainType.FULL,
    "regexp": DomainType.REGEX,
    "keyword": DomainType.PLAIN,
}


def matcher_matches_domain(matcher: str, domain: str, geosite: GeositeLookup | GeodataSet) -> bool:
    """Whether one entry of a rule's `domain` list matches `domain` (already an ASCII host name)."""
    name = normalize_domain(domain)
    prefix, sep, value = matcher.partition(":")
    if not sep:
        return matcher.lower() in name
    if prefix == "geosite":
        if "@" in value:
            raise _unsupported(matcher, "an attribute filter (@attr)")
        if not value:
            raise RoutingError(f"matcher {matcher!r} names no geosite category")
        if isinstance(geosite, GeodataSet):
            return geosite.domain_set(value).matches(name)
        return DomainRuleSet(_category(geosite(value), value, "geosite.dat")).matches(name)
    if prefix in _RULE_PREFIXES:
        return domain_rule_matches(DomainRule(_RULE_PREFIXES[prefix], value), name)
    if prefix == "dotless":
        if "." in value:
            raise RoutingError(f"matcher {matcher!r}: a dotless: value must not contain a dot")
        return "." not in name and value.lower() in name
    if prefix == "ext":
        raise _unsupported(matcher, "an external geodata file (ext:)")
    # Xray treats any other string, colon or not, as a plain substring.
    return matcher.lower() in name


def _category(found: T | None, name: str, file: str) -> T:
    if found is None:
        raise GeodataError(f'category "{name}" is not in {file}')
    return found


def _parse_network(matcher: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(matcher, strict=False)
    except ValueError as exc:
        raise RoutingError(f"ip matcher {matcher!r} is neither geoip:NAME nor an IP address or CIDR") from exc


def matcher_matches_ip(matcher: str, ip: IPAddress, geoip: GeoipLookup | GeodataSet) -> bool:
    """Whether one entry of a rule's `ip` list matches `ip`."""
    if matcher.startswith("!"):
        raise _unsupported(matcher, "negation (!)")
    if matcher.startswith("ext:"):
        raise _unsupported(matcher, "an external geodata file (ext:)")
    if matcher.startswith("geoip:"):
        code = matcher.removeprefix("geoip:")
        if code.startswith("!"):
            raise _unsupported(matcher, "negation (geoip:!)")
        if not code:
            raise RoutingError(f"matcher {matcher!r} names no geoip category")
        if isinstance(geoip, GeodataSet):
            return geoip.ip_set(code).matches(ip)
        return IPRangeSet(_category(geoip(code), code, "geoip.dat")).matches(ip)
    network = _parse_network(matcher)
    return network.version == ip.version and ip in network
