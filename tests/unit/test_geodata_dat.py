"""The geosite.dat / geoip.dat format: hand-derived byte vectors, round trips, malformed input."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    write_geoip,
    write_geoip_categories,
    write_geosite,
)

# --- Hand-derived vectors -----------------------------------------------------------------------------------
#
# Protobuf wire rules: a field key is (number << 3) | wire type; wire type 2 (length-delimited) is followed by
# a varint length; wire type 0 by a varint. proto3 omits default values (type Plain = 0, reverse_match false).
#
# GeoSiteList { entry { country_code "RU"; domain { type Domain(2); value "ru" }; domain { value "x" } } }
#   Domain 1:   08 02 (field 1 varint = 2)   12 02 72 75 (field 2 "ru")            -> 6 bytes
#   Domain 2:   12 01 78 (field 2 "x"; type Plain is the default and is left out) -> 3 bytes
#   GeoSite:    0a 02 52 55 ("RU") | 12 06 <domain 1> | 12 03 <domain 2>          -> 4 + 8 + 5 = 17 = 0x11
#   GeoSiteList: 0a 11 <GeoSite>
GEOSITE_VECTOR = bytes.fromhex(
    "0a 11"  # GeoSiteList.entry, 17 bytes
    " 0a 02 52 55"  # country_code "RU"
    " 12 06 08 02 12 02 72 75"  # domain { type 2; value "ru" }
    " 12 03 12 01 78"  # domain { value "x" }
)

# GeoIPList { entry { country_code "XX"; cidr { ip 0a000000; prefix 8 }; reverse_match true } }
#   CIDR:     0a 04 0a 00 00 00 (field 1 bytes, 4 long) | 10 08 (field 2 varint 8)  -> 8 bytes
#   GeoIP:    0a 02 58 58 | 12 08 <CIDR> | 18 01 (field 3 varint 1)                -> 4 + 10 + 2 = 16 = 0x10
#   GeoIPList: 0a 10 <GeoIP>
GEOIP_VECTOR_REVERSE = bytes.fromhex(
    "0a 10"  # GeoIPList.entry, 16 bytes
    " 0a 02 58 58"  # country_code "XX"
    " 12 08 0a 04 0a 00 00 00 10 08"  # cidr { ip 10.0.0.0; prefix 8 }
    " 18 01"  # reverse_match true
)
# The same without reverse_match (the default is not serialized): GeoIP is 14 = 0x0e bytes.
GEOIP_VECTOR = bytes.fromhex("0a 0e 0a 02 58 58 12 08 0a 04 0a 00 00 00 10 08")


def test_geosite_hand_vector_reads() -> None:
    assert list_codes(GEOSITE_VECTOR) == ["RU"]
    assert read_geosite_category(GEOSITE_VECTOR, "RU") == [
        DomainRule(DomainType.DOMAIN, "ru"),
        DomainRule(DomainType.PLAIN, "x"),
    ]


def test_geosite_writer_produces_the_hand_vector() -> None:
    data = write_geosite({"ru": [DomainRule(DomainType.DOMAIN, "ru"), DomainRule(DomainType.PLAIN, "x")]})
    assert data == GEOSITE_VECTOR


def test_geoip_hand_vectors() -> None:
    net = ipaddress.ip_network("10.0.0.0/8")
    assert read_geoip_category(GEOIP_VECTOR_REVERSE, "xx") == GeoIPCategory((net,), reverse_match=True)
    assert read_geoip_category(GEOIP_VECTOR, "XX") == GeoIPCategory((net,), reverse_match=False)
    assert write_geoip({"xx": ["10.0.0.0/8"]}) == GEOIP_VECTOR
    assert write_geoip_categories({"XX": GeoIPCategory((net,), True)}) == GEOIP_VECTOR_REVERSE


def test_code_is_the_first_field_of_every_entry() -> None:
    data = write_geosite({"b": [DomainRule(DomainType.FULL, "b.example")], "a": []})
    # Xray's scanner: after the entry key and length, a 0x0a key and a one-byte length, then the code.
    assert data[2:6] == b"\x0a\x01B\x12"
    geoip = write_geoip({"private": ["192.168.0.0/16", "fc00::/7"]})
    assert geoip[2:4] == b"\x0a\x07" and geoip[4:11] == b"PRIVATE"


# --- Round trips --------------------------------------------------------------------------------------------

code_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!@_", min_size=1)
rule_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
domain_rules = st.builds(DomainRule, st.sampled_from(list(DomainType)), rule_values)


def _unique_upper(codes: list[str]) -> bool:
    return len({code.upper() for code in codes}) == len(codes)


geosite_maps = st.dictionaries(
    code_text.filter(lambda c: len(c) <= 40), st.lists(domain_rules, max_size=8)
).filter(lambda d: _unique_upper(list(d)))


@given(geosite_maps)
def test_geosite_round_trip(categories: dict[str, list[DomainRule]]) -> None:
    data = write_geosite(categories)
    assert list_codes(data) == [code.upper() for code in categories]
    for code, rules in categories.items():
        assert read_geosite_category(data, code) == rules
        assert read_geosite_category(data, code.lower()) == rules
        assert read_geosite_category(data, code.upper()) == rules
    assert write_geosite(categories) == data  # deterministic


@given(geosite_maps, code_text)
def test_absent_geosite_code_is_none(categories: dict[str, list[DomainRule]], other: str) -> None:
    if other.upper() in {code.upper() for code in categories}:
        return
    assert read_geosite_category(write_geosite(categories), other) is None


def _network(data: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]) -> IPNetwork:
    address, prefix = data
    return ipaddress.ip_network((address, prefix % (address.max_prefixlen + 1)), strict=False)


networks = st.tuples(st.ip_addresses(), st.integers(0, 128)).map(_network)
geoip_maps = st.dictionaries(code_text.filter(lambda c: len(c) <= 40), st.lists(networks, max_size=8)).filter(
    lambda d: _unique_upper(list(d))
)


@given(geoip_maps)
def test_geoip_round_trip(categories: dict[str, list[IPNetwork]]) -> None:
    data = write_geoip({code: [str(net) for net in nets] for code, nets in categories.items()})
    assert list_codes(data) == [code.upper() for code in categories]
    for code, nets in categories.items():
        assert read_geoip_category(data, code.swapcase()) == GeoIPCategory(tuple(nets))


@given(st.lists(networks, max_size=5), st.booleans())
def test_geoip_reverse_match_round_trip(nets: list[IPNetwork], reverse: bool) -> None:
    category = GeoIPCategory(tuple(nets), reverse)
    assert read_geoip_category(write_geoip_categories({"X": category}), "x") == category


def test_write_geoip_masks_host_bits_and_accepts_single_addresses() -> None:
    data = write_geoip({"t": ["10.1.2.3/8", "192.0.2.7", "2001:db8::1"]})
    category = read_geoip_category(data, "T")
    assert category is not None
    assert [str(net) for net in category.cidrs] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"]


def test_mapping_order_is_kept() -> None:
    data = write_geosite({"zeta": [], "alpha": [], "MID": []})
    assert list_codes(data) == ["ZETA", "ALPHA", "MID"]


def test_empty_file_has_no_codes() -> None:
    assert list_codes(b"") == []
    assert read_geosite_category(b"", "ru") is None
    assert read_geoip_category(b"", "ru") is None


# --- Laziness and leniency ----------------------------------------------------------------------------------


def test_listing_and_reading_do_not_decode_other_entries() -> None:
    # An entry whose domain is garbage (its value claims 5 bytes, 2 follow) but whose own framing is intact.
    broken_domain = bytes([0x12, 0x04, 0x12, 0x05, 0x61, 0x62])
    broken_entry = bytes([0x0A, 0x03]) + b"BAD" + broken_domain
    good = write_geosite({"good": [DomainRule(DomainType.FULL, "ok.example")]})
    data = bytes([0x0A, len(broken_entry)]) + broken_entry + good
    assert list_codes(data) == ["BAD", "GOOD"]
    assert read_geosite_category(data, "good") == [DomainRule(DomainType.FULL, "ok.example")]
    with pytest.raises(GeodataError):
        read_geosite_category(data, "bad")


def test_unknown_top_level_fields_are_skipped() -> None:
    data = bytes([0x10, 0x05]) + GEOSITE_VECTOR + bytes([0x1A, 0x01, 0x00])
    assert list_codes(data) == ["RU"]


def test_code_after_other_fields_is_still_found() -> None:
    # Xray's scanner would not find this entry; reading here is lenient.
    entry = bytes([0x12, 0x03, 0x12, 0x01, 0x78, 0x0A, 0x02]) + b"CC"
    data = bytes([0x0A, len(entry)]) + entry
    assert list_codes(data) == ["CC"]
    assert read_geosite_category(data, "cc") == [DomainRule(DomainType.PLAIN, "x")]


def test_lowercase_code_in_a_file_is_not_found_like_xray() -> None:
    data = bytes([0x0A, 0x04, 0x0A, 0x02]) + b"ru"
    assert list_codes(data) == ["ru"]
    assert read_geosite_category(data, "ru") is None


# --- Malformed files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        GEOSITE_VECTOR[:-1],  # entry runs past the end
        bytes([0x0A]),  # missing length
        bytes([0x0A, 0xFF]),  # truncated varint
        bytes([0x08, 0x01]),  # entry with a varint wire type... as field 1
        bytes([0x0B, 0x0C]),  # group wire type
        bytes([0x00, 0x00]),  # field number 0
        bytes([0x0A, 0x04, 0x0A, 0x02, 0xFF, 0xFE]),  # code is not UTF-8
        bytes([0x12] + [0xFF] * 11),  # varint too long
    ],
)
def test_malformed_files_raise_geodata_error(data: bytes) -> None:
    with pytest.raises(GeodataError) as info:
        list_codes(data)
    assert isinstance(info.value, OvpnError)


def test_unknown_domain_type_is_an_error() -> None:
    entry = bytes([0x0A, 0x01]) + b"X" + bytes([0x12, 0x05, 0x08, 0x07, 0x12, 0x01]) + b"a"
    data = bytes([0x0A, len(entry)]) + entry
    with pytest.raises(GeodataError, match="unknown type 7"):
        read_geosite_category(data, "X")


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        (bytes([0x0A, 0x04, 10, 0, 0, 0, 0x10, 33]), "invalid network"),
        (bytes([0x0A, 0x05, 10, 0, 0, 0, 0, 0x10, 8]), "5 bytes"),
    ],
)
def test_bad_cidrs_are_errors(cidr: bytes, message: str) -> None:
    entry = bytes([0x0A, 0x01]) + b"X" + bytes([0x12, len(cidr)]) + cidr
    data = bytes([0x0A, len(entry)]) + entry
    with pytest.raises(GeodataError, match=message):
        read_geoip_category(data, "X")


def test_writer_rejects_bad_codes() -> None:
    with pytest.raises(GeodataError, match="twice"):
        write_geosite({"ru": [], "RU": []})
    with pytest.raises(GeodataError, match="empty"):
        write_geoip({"": []})
    with pytest.raises(GeodataError, match="longer than 127"):
        write_geosite({"A" * 128: []})
    with pytest.raises(GeodataError, match="not an IP network"):
        write_geoip({"x": ["10.0.0.0/33"]})
