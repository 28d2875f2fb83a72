"""Which outbound a destination takes through a list of Xray routing rules, without I/O.

The rules are evaluated the way Xray does with `domainStrategy: "AsIs"`: top to bottom, the first rule whose
fields all match wins. A domain destination is never resolved, so it can only match `domain` fields and a
rule with an `ip` field never matches it; an IP destination can only match `ip` fields.

A sniffed name (TLS SNI, HTTP Host) is modelled as Xray's routing context sees it when the inbound sniffs with
`routeOnly`: `domain` fields see the sniffed name instead of the destination's own (for an IP destination as
well as for a domain one), while `ip` fields still see an IP destination. `sniffed_names_reach_routing` says
from an inbound whether that happens at all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ovpn.geodata.match import (
    GeodataSet,
    IPAddress,
    RoutingError,
    matcher_matches_domain,
    matcher_matches_ip,
)

__all__ = [
    "RouteDecision",
    "explain_route",
    "parse_destination",
    "parse_name",
    "parse_port_list",
    "sniffed_names_reach_routing",
]

_CONDITION_FIELDS = ("domain", "ip", "port", "inboundTag", "network")
_OTHER_FIELDS = ("type", "outboundTag", "balancerTag", "ruleTag")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\Z")
_NAME_SNIFFERS = ("http", "tls", "quic")


@dataclass(frozen=True)
class RouteDecision:
    destination: str
    outbound: str | None
    rule_index: int | None
    rule_tag: str | None
    matcher: str | None
    balancer: bool = False
    """True when `outbound` is the tag of a balancer (the rule had `balancerTag` and no `outboundTag`)."""
    sniffed: str | None = None
    """The sniffed name that `domain` fields saw, normalized; None when there was none."""


def parse_destination(text: str) -> str | IPAddress:
    """An IP address, or a host name normalized to lower-case ASCII (IDN to punycode, no trailing dot)."""
    raw = text.strip()
    if not raw:
        raise RoutingError("the destination is empty", hint="give a host name or an IP address")
    if "://" in raw or "/" in raw:
        raise RoutingError(
            f"destination {text!r} is not a host name or IP address",
            hint="give only the host, for example example.com or 192.0.2.1, not a URL",
        )
    candidate = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped  # Xray handles IPv4-mapped IPv6 addresses as IPv4
        return address
    if ":" in raw:
        raise RoutingError(
            f"destination {text!r} is not a host name or IP address",
            hint="give the host without a port; pass the port separately",
        )
    name = raw.removesuffix(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise RoutingError(f"destination {text!r} is not a valid host name: {exc}") from exc
    if ascii_name.rsplit(".", 1)[-1].isdigit():
        raise RoutingError(f"destination {text!r} looks like an IP address but is not a valid one")
    if len(ascii_name) > 253:
        raise RoutingError(f"destination {text!r} is longer than 253 characters")
    for label in ascii_name.split("."):
        if not label or len(label) > 63 or not _LABEL.match(label):
            raise RoutingError(
                f"destination {text!r} is not a valid host name (bad label {label!r})",
                hint="a host name is dot-separated labels of letters, digits and hyphens",
            )
    return ascii_name


def parse_name(text: str) -> str:
    """A host name as `parse_destination` normalizes it; an IP address is refused (SNI and Host carry names)."""
    try:
        name = parse_destination(text)
    except RoutingError as exc:
        raise RoutingError(f"sniffed name: {exc.message}", hint=exc.hint) from None
    if not isinstance(name, str):
        raise RoutingError(
            f"sniffed name {text!r} is an IP address",
            hint="a TLS SNI or HTTP Host that routing can match is a host name",
        )
    return name


def parse_port_list(spec: object) -> list[tuple[int, int]]:
    """Xray's port syntax: 443, "443", "1000-2000", "53,443,1000-2000"; as inclusive ranges."""
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise RoutingError(f'rule port {spec!r} must be a number or a string such as "53,443,1000-2000"')
    ranges: list[tuple[int, int]] = []
    for part in str(spec).split(","):
        item = part.strip()
        low_text, dash, high_text = item.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise RoutingError(f"rule port {spec!r}: {item!r} is not a port or a range") from None
        if not (0 <= low <= high <= 65535):
            raise RoutingError(f"rule port {spec!r}: {item!r} is not a valid port range")
        ranges.append((low, high))
    return ranges


def sniffed_names_reach_routing(inbound: Mapping[str, object]) -> bool:
    """Whether routing sees a name sniffed from this inbound's connections (TLS SNI, HTTP Host, QUIC).

    Only the `routeOnly` form is modelled: without it Xray rewrites the destination to the sniffed name, which
    route explanation does not follow.
    """
    sniffing = inbound.get("sniffing")
    if not isinstance(sniffing, Mapping) or not sniffing.get("enabled"):
        return False
    overrides = sniffing.get("destOverride") or []
    if not isinstance(overrides, list) or not any(kind in overrides for kind in _NAME_SNIFFERS):
        return False
    if not sniffing.get("routeOnly"):
        raise RoutingError(
            "the inbound sniffs without routeOnly (it rewrites destinations): not supported by route explanation"
        )
    return True


def _string_list(rule_index: int, field: str, value: object) -> list[str]:
    # Xray's StringList accepts one string or a list of strings.
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise RoutingError(f"rule {rule_index}: {field} must be a list of strings, not {value!r}")


def _networks(rule_index: int, value: object) -> set[str]:
    names: set[str] = set()
    for item in _string_list(rule_index, "network", value):
        for part in item.split(","):
            name = part.strip().lower()
            if name not in ("tcp", "udp"):
                raise RoutingError(f"rule {rule_index}: unknown network {part.strip()!r} (use tcp, udp)")
            names.add(name)
    return names


def _check_fields(index: int, rule: Mapping[str, object]) -> None:
    unknown = [key for key in rule if key not in _CONDITION_FIELDS and key not in _OTHER_FIELDS]
    if unknown:
        raise RoutingError(
            f"rule {index}: field(s) {', '.join(sorted(unknown))} are not supported by route explanation",
            hint="supported fields: " + ", ".join(_CONDITION_FIELDS + _OTHER_FIELDS),
        )
    kind = rule.get("type", "field")
    if kind != "field":
        raise RoutingError(f'rule {index}: type {kind!r} is not "field"')
    if not any(key in rule for key in _CONDITION_FIELDS):
        raise RoutingError(f"rule {index} has no condition (Xray rejects such a rule)")
    for key in ("outboundTag", "balancerTag", "ruleTag"):
        if key in rule and not isinstance(rule[key], str):
            raise RoutingError(f"rule {index}: {key} must be a string")
    if not rule.get("outboundTag") and not rule.get("balancerTag"):
        raise RoutingError(f"rule {index} has neither outboundTag nor balancerTag")


def _rule_matches(
    index: int,
    rule: Mapping[str, object],
    target: str | IPAddress,
    routing_name: str | None,
    geodata: GeodataSet,
    inbound_tag: str,
    port: int,
    network: str,
) -> tuple[bool, str | None]:
    """Whether every condition of `rule` holds, and the domain/ip matcher string that matched.

    `domain` fields match `routing_name` (the sniffed name, else a domain destination); `ip` fields match an IP
    destination only.
    """
    if "inboundTag" in rule and inbound_tag not in _string_list(index, "inboundTag", rule["inboundTag"]):
        return False, None
    if "port" in rule and not any(low <= port <= high for low, high in parse_port_list(rule["port"])):
        return False, None
    if "network" in rule and network not in _networks(index, rule["network"]):
        return False, None
    matched: str | None = None
    if "domain" in rule:
        matchers = _string_list(index, "domain", rule["domain"])
        if routing_name is None:
            return False, None
        matched = next((m for m in matchers if matcher_matches_domain(m, routing_name, geodata)), None)
        if matched is None:
            return False, None
    if "ip" in rule:
        matchers = _string_list(index, "ip", rule["ip"])
        if isinstance(target, str):
            return False, None  # AsIs: a domain is never resolved for IP rules
        matched = next((m for m in matchers if matcher_matches_ip(m, target, geodata)), None)
        if matched is None:
            return False, None
    return True, matched


def explain_route(
    rules: Sequence[Mapping[str, object]],
    destination: str,
    geodata: GeodataSet,
    inbound_tag: str = "vless-reality",
    port: int = 443,
    *,
    network: str = "tcp",
    sniffed: str | None = None,
) -> RouteDecision:
    """The first rule that `destination` (a host name or IP) matches, under domainStrategy "AsIs".

    `sniffed` is the name the inbound's sniffer found in the connection, for an inbound whose sniffed names
    reach routing (see `sniffed_names_reach_routing`); leave it None otherwise.
    """
    if network not in ("tcp", "udp"):
        raise RoutingError(f"network {network!r} must be tcp or udp")
    if not 0 <= port <= 65535:
        raise RoutingError(f"port {port} is out of range")
    target = parse_destination(destination)
    sniffed_name = None if sniffed is None else parse_name(sniffed)
    routing_name = sniffed_name or (target if isinstance(target, str) else None)
    shown = str(target)
    for index, rule in enumerate(rules):
        _check_fields(index, rule)
    for index, rule in enumerate(rules):
        hit, matcher = _rule_matches(index, rule, target, routing_name, geodata, inbound_tag, port, network)
        if hit:
            outbound = rule.get("outboundTag")
            via_balancer = not outbound
            tag = rule.get("ruleTag")
            return RouteDecision(
                destination=shown,
                outbound=str(outbound or rule["balancerTag"]),
                rule_index=index,
                rule_tag=tag if isinstance(tag, str) else None,
                matcher=matcher,
                balancer=via_balancer,
                sniffed=sniffed_name,
            )
    return RouteDecision(
        destination=shown, outbound=None, rule_index=None, rule_tag=None, matcher=None, sniffed=sniffed_name
    )
