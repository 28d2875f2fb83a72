"""Reading and writing Xray's `geosite.dat` / `geoip.dat` files.

Both files are one protobuf message each (`GeoSiteList` / `GeoIPList`) whose only field is a repeated `entry`.
The schema is declared below as a `FileDescriptorProto` built in code, and the message classes come from the
`protobuf` runtime; there is no generated code.

Real feeds are large (tens of MB, one category with 700k+ domains), so nothing here parses a whole file.
A small wire-level scanner walks the top-level `entry` records, reading only each entry's code and skipping
the rest by its length; a category is then decoded on its own from its slice of the file.

Xray's loader finds a category by comparing the bytes right after the first tag of each entry with the
upper-cased wanted code. Writers here therefore put the code first (protobuf serializes fields in number
order and the code is field 1), upper-case it, and keep it under 128 bytes (Xray assumes a one-byte length).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

from ovpn.errors import OvpnError

__all__ = [
    "DomainRule",
    "DomainType",
    "GeoIPCategory",
    "GeodataError",
    "IPNetwork",
    "list_codes",
    "read_geoip_category",
    "read_geosite_category",
    "write_geoip",
    "write_geoip_categories",
    "write_geosite",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_CODE_BYTES = 127
"""Xray's scanner reads the code's length as a single byte, so a code must fit in a one-byte varint."""


class GeodataError(OvpnError):
    """A geodata file is malformed, or a category cannot be found or written."""


class DomainType(enum.IntEnum):
    """`Domain.Type` from the schema: how a geosite value is compared with a domain."""

    PLAIN = 0  # substring
    REGEX = 1  # regular expression
    DOMAIN = 2  # the domain itself and its subdomains
    FULL = 3  # exact match


@dataclass(frozen=True)
class DomainRule:
    type: DomainType
    value: str


@dataclass(frozen=True)
class GeoIPCategory:
    cidrs: tuple[IPNetwork, ...]
    reverse_match: bool = False


# --- Schema ------------------------------------------------------------------------------------------------

_PACKAGE = "ovpn.geodata.wire"
_F = descriptor_pb2.FieldDescriptorProto


def _field(
    message: Any, name: str, number: int, kind: int, *, repeated: bool = False, type_name: str = ""
) -> Any:
    field = message.field.add()
    field.name = name
    field.number = number
    field.type = kind
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    return field


def _schema() -> Any:
    """The geodata schema (facts §7.1) as a descriptor; field names follow the v2fly/Xray ≤26.3 copy."""
    proto = descriptor_pb2.FileDescriptorProto()
    proto.name = "ovpn/geodata/geodat.proto"
    proto.package = _PACKAGE
    proto.syntax = "proto3"

    domain = proto.message_type.add()
    domain.name = "Domain"
    domain_type = domain.enum_type.add()
    domain_type.name = "Type"
    for member in DomainType:
        value = domain_type.value.add()
        value.name = member.name.capitalize()
        value.number = int(member)
    attribute = domain.nested_type.add()
    attribute.name = "Attribute"
    attribute.oneof_decl.add().name = "typed_value"
    _field(attribute, "key", 1, _F.TYPE_STRING)
    _field(attribute, "bool_value", 2, _F.TYPE_BOOL).oneof_index = 0
    _field(attribute, "int_value", 3, _F.TYPE_INT64).oneof_index = 0
    _field(domain, "type", 1, _F.TYPE_ENUM, type_name="Domain.Type")
    _field(domain, "value", 2, _F.TYPE_STRING)
    _field(domain, "attribute", 3, _F.TYPE_MESSAGE, repeated=True, type_name="Domain.Attribute")

    geosite = proto.message_type.add()
    geosite.name = "GeoSite"
    _field(geosite, "country_code", 1, _F.TYPE_STRING)
    _field(geosite, "domain", 2, _F.TYPE_MESSAGE, repeated=True, type_name="Domain")

    geosite_list = proto.message_type.add()
    geosite_list.name = "GeoSiteList"
    _field(geosite_list, "entry", 1, _F.TYPE_MESSAGE, repeated=True, type_name="GeoSite")

    cidr = proto.message_type.add()
    cidr.name = "CIDR"
    _field(cidr, "ip", 1, _F.TYPE_BYTES)
    _field(cidr, "prefix", 2, _F.TYPE_UINT32)

    geoip = proto.message_type.add()
    geoip.name = "GeoIP"
    _field(geoip, "country_code", 1, _F.TYPE_STRING)
    _field(geoip, "cidr", 2, _F.TYPE_MESSAGE, repeated=True, type_name="CIDR")
    _field(geoip, "reverse_match", 3, _F.TYPE_BOOL)

    geoip_list = proto.message_type.add()
    geoip_list.name = "GeoIPList"
    _field(geoip_list, "entry", 1, _F.TYPE_MESSAGE, repeated=True, type_name="GeoIP")
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema())


def _message_class(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


_GeoSite: Any = _message_class("GeoSite")
_GeoSiteList: Any = _message_class("GeoSiteList")
_GeoIP: Any = _message_class("GeoIP")
_GeoIPList: Any = _message_class("GeoIPList")

# --- Wire-level scanner ------------------------------------------------------------------------------------

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise GeodataError(f"truncated varint at byte {pos}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise GeodataError(f"varint longer than 10 bytes at byte {pos}")


def _read_field(data: bytes, pos: int, end: int) -> tuple[int, int, int, int]:
    """Read the field at `pos`: (number, wire type, value start, next position).

    For a length-delimited field the value is `data[value start:next position]`, without its length prefix.
    """
    key, pos = _read_varint(data, pos, end)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise GeodataError(f"invalid field number 0 at byte {pos}")
    start = pos
    if wire == _WIRE_VARINT:
        _, pos = _read_varint(data, pos, end)
    elif wire == _WIRE_I64:
        pos += 8
    elif wire == _WIRE_I32:
        pos += 4
    elif wire == _WIRE_LEN:
        length, start = _read_varint(data, pos, end)
        pos = start + length
    else:
        raise GeodataError(f"unsupported wire type {wire} at byte {start}")
    if pos > end:
        raise GeodataError(f"field {number} at byte {start} runs past the end of its message")
    return number, wire, start, pos


def _decode_code(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GeodataError(f"category code at byte {start} is not UTF-8") from exc


def _entry_code(data: bytes, start: int, end: int) -> str:
    """The code of the entry in `data[start:end]`: normally its first field, so this costs one field read."""
    code = ""
    pos = start
    first = True
    while pos < end:
        number, wire, value_start, pos = _read_field(data, pos, end)
        if number == 1:
            if wire != _WIRE_LEN:
                raise GeodataError(f"category code at byte {value_start} has wire type {wire}")
            code = _decode_code(data, value_start, pos)
            if first:
                return code  # the usual layout, and the only one Xray's own scanner understands
        first = False
    return code


def _iter_entries(data: bytes) -> Iterator[tuple[str, int, int]]:
    """Yield (code, start, end) for every top-level `entry` without decoding its contents."""
    end = len(data)
    pos = 0
    while pos < end:
        number, wire, start, pos = _read_field(data, pos, end)
        if number != 1:
            continue  # not part of the schema; protobuf would keep it as an unknown field
        if wire != _WIRE_LEN:
            raise GeodataError(f"entry at byte {start} has wire type {wire}, expected a length-delimited one")
        yield _entry_code(data, start, pos), start, pos


def _find_entry(data: bytes, code: str) -> bytes | None:
    wanted = code.upper()
    for found, start, stop in _iter_entries(data):
        if found == wanted:
            return data[start:stop]
    return None


# --- Reading -----------------------------------------------------------------------------------------------


def list_codes(data: bytes) -> list[str]:
    """Category codes in file order, as stored (upper-case in any file Xray can use)."""
    return [code for code, _, _ in _iter_entries(data)]


_DOMAIN_TYPES = {int(member): member for member in DomainType}


def _category_entry(data: bytes, code: str, message: Any, kind: str) -> Any:
    """One category's decoded entry (a GeoSite or GeoIP message), or None if absent."""
    raw = _find_entry(data, code)
    if raw is None:
        return None
    try:
        return message.FromString(raw)
    except DecodeError as exc:
        raise GeodataError(f"{kind} category {code.upper()} is malformed: {exc}") from exc


def read_geosite_category(data: bytes, code: str) -> list[DomainRule] | None:
    """The rules of one geosite category, or None if absent. `code` is upper-cased first, as Xray does."""
    entry = _category_entry(data, code, _GeoSite, "geosite")
    if entry is None:
        return None
    types = _DOMAIN_TYPES
    rules: list[DomainRule] = []
    append = rules.append
    for domain in entry.domain:
        kind = types.get(domain.type)
        if kind is None:
            raise GeodataError(
                f"geosite category {code.upper()} has a domain of unknown type {domain.type}: "
                f"{domain.value!r}"
            )
        append(DomainRule(kind, domain.value))
    return rules


def read_geoip_category(data: bytes, code: str) -> GeoIPCategory | None:
    """The networks of one geoip category, or None if absent. `code` is upper-cased first, as Xray does."""
    entry = _category_entry(data, code, _GeoIP, "geoip")
    if entry is None:
        return None
    networks: list[IPNetwork] = []
    for cidr in entry.cidr:
        ip: bytes = cidr.ip
        prefix: int = cidr.prefix
        try:
            if len(ip) == 4:
                networks.append(ipaddress.IPv4Network((ip, prefix), strict=False))
            elif len(ip) == 16:
                networks.append(ipaddress.IPv6Network((ip, prefix), strict=False))
            else:
                raise GeodataError(
                    f"geoip category {code.upper()} has an address of {len(ip)} bytes (expected 4 or 16)"
                )
        except ValueError as exc:
            raise GeodataError(f"geoip category {code.upper()} has an invalid network: {exc}") from exc
    return GeoIPCategory(tuple(networks), bool(entry.reverse_match))


# --- Writing -----------------------------------------------------------------------------------------------


def _entry_code_for_writing(code: str, seen: set[str]) -> str:
    upper = code.upper()
    if not upper:
        raise GeodataError("a category code must not be empty")
    if len(upper.encode("utf-8")) > MAX_CODE_BYTES:
        raise GeodataError(f"category code {upper!r} is longer than {MAX_CODE_BYTES} bytes")
    if upper in seen:
        raise GeodataError(f"category code {upper!r} appears twice (codes are compared upper-cased)")
    seen.add(upper)
    return upper


def write_geosite(categories: Mapping[str, Sequence[DomainRule]]) -> bytes:
    """Encode categories (in mapping order) as a geosite.dat Xray can load; same input, same bytes."""
    message = _GeoSiteList()
    seen: set[str] = set()
    for code, rules in categories.items():
        entry = message.entry.add()
        entry.country_code = _entry_code_for_writing(code, seen)
        for rule in rules:
            domain = entry.domain.add()
            domain.type = int(DomainType(rule.type))
            domain.value = rule.value
    data: bytes = message.SerializeToString(deterministic=True)
    return data


def write_geoip(categories: Mapping[str, Sequence[str]]) -> bytes:
    """Encode CIDR strings ("10.0.0.0/8", "2001:db8::/32", or a single address) as a geoip.dat."""
    parsed: dict[str, GeoIPCategory] = {}
    for code, cidrs in categories.items():
        networks: list[IPNetwork] = []
        for text in cidrs:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise GeodataError(f"category {code}: {text!r} is not an IP network") from exc
        parsed[code] = GeoIPCategory(tuple(networks))
    return write_geoip_categories(parsed)


def write_geoip_categories(categories: Mapping[str, GeoIPCategory]) -> bytes:
    """Like `write_geoip`, but from `GeoIPCategory` values, so `reverse_match` can be set."""
    message = _GeoIPList()
    seen: set[str] = set()
    for code, category in categories.items():
        entry = message.entry.add()
        entry.country_code = _entry_code_for_writing(code, seen)
        for network in category.cidrs:
            cidr = entry.cidr.add()
            cidr.ip = network.network_address.packed
            cidr.prefix = network.prefixlen
        entry.reverse_match = category.reverse_match
    data: bytes = message.SerializeToString(deterministic=True)
    return data
