import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.topology import XRAY_KEY_PAIRS

from ovpn.core import reality
from ovpn.errors import OvpnError


@pytest.mark.parametrize(("private", "public"), XRAY_KEY_PAIRS.values())
def test_public_key_matches_what_xray_x25519_printed(private: str, public: str) -> None:
    assert reality.public_from_private(private) == public


def test_generated_pair_is_clamped_and_consistent() -> None:
    pair = reality.generate_key_pair()
    raw = base64.urlsafe_b64decode(pair.private_key + "=")
    assert len(pair.private_key) == 43 and len(pair.public_key) == 43
    assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40
    assert reality.public_from_private(pair.private_key) == pair.public_key


def test_key_pair_generates_when_both_are_missing() -> None:
    first, second = reality.key_pair(None, None), reality.key_pair(None, None)
    assert first.private_key != second.private_key


def test_mismatched_public_key_is_refused_and_names_the_right_one() -> None:
    private, public = XRAY_KEY_PAIRS["proxy"]
    _, other_public = XRAY_KEY_PAIRS["pool"]
    with pytest.raises(OvpnError) as e:
        reality.key_pair(private, other_public)
    assert "does not match" in e.value.message
    assert public in e.value.hint


def test_public_key_alone_is_refused() -> None:
    with pytest.raises(OvpnError, match="without its private key"):
        reality.key_pair(None, XRAY_KEY_PAIRS["pool"][1])


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "short",
        "A" * 44,
        "+" * 43,
        "GDSn5Q-MfYCgeUx7pfaD5lRi0pe13O42hExP6r7o62U=",
        "GDSn5Q-MfYCgeUx7pfaD5lRi0pe13O42hExP6r7o62V",
    ],
)
def test_malformed_private_keys_are_refused(bad: str) -> None:
    with pytest.raises(OvpnError, match="malformed REALITY private key"):
        reality.key_pair(bad, None)


@given(st.binary(min_size=0, max_size=8))
def test_any_hex_of_up_to_8_bytes_is_a_short_id(raw: bytes) -> None:
    assert reality.short_id(raw.hex()) == raw.hex()


@pytest.mark.parametrize("bad", ["abc", "0123456789abcdef00", "zz", "ABCD", "ab cd", "ab;"])
def test_malformed_short_ids_are_refused(bad: str) -> None:
    with pytest.raises(OvpnError, match="short id"):
        reality.short_id(bad)


def test_generated_short_id_is_16_hex() -> None:
    sid = reality.generate_short_id()
    assert len(sid) == 16 and reality.short_id(sid) == sid
