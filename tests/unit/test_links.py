import dataclasses
from urllib.parse import parse_qs, unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st
from tests.support.topology import BACKEND_1, PROXY, SOLO, USERS

from ovpn.core.links import client_config, vless_link
from ovpn.core.model import User
from ovpn.core.pool import plan_attach


def test_link_has_the_documented_shape() -> None:
    # Written by hand from the share-link standard (#716) and the REALITY parameters v2rayNG reads.
    expected = (
        "vless://7de16ee7-504c-4fce-aec4-11358493ffad@vpn-solo.example.net:443"
        "?type=tcp&encryption=none&security=reality&sni=www.microsoft.com&fp=chrome"
        "&pbk=N5GTaS8RsXWjTTUQqtveEizU5bT40u7jC7iGmSqrilM&sid=beef&flow=xtls-rprx-vision"
        "#ovpn-vpn-solo-alice"
    )
    assert vless_link(SOLO, USERS[0]) == expected


def test_proxy_link_uses_the_proxy_entry_parameters() -> None:
    parts = urlsplit(vless_link(PROXY, USERS[0]))
    query = parse_qs(parts.query)
    assert parts.hostname == PROXY.domain
    assert query["pbk"] == [PROXY.reality_public_key]
    assert query["sid"] == [PROXY.reality_short_id]


usernames = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?\Z")


@given(usernames, st.uuids())
def test_link_round_trips_through_a_url_parser(username: str, uid: object) -> None:
    user = User(username=username, uuid=str(uid), email=f"{username}@global")
    parts = urlsplit(vless_link(SOLO, user))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "vless"
    assert unquote(parts.username or "") == str(uid)
    assert parts.port == SOLO.port
    assert query == {
        "type": "tcp",
        "encryption": "none",
        "security": "reality",
        "sni": SOLO.reality_server_name,
        "fp": "chrome",
        "pbk": SOLO.reality_public_key,
        "sid": SOLO.reality_short_id,
        "flow": "xtls-rprx-vision",
    }
    assert unquote(parts.fragment) == f"ovpn-vpn-solo-{username}"


def test_link_is_byte_identical_after_the_server_joins_a_pool() -> None:
    plain = dataclasses.replace(BACKEND_1, relay_uuid=None)
    before = [vless_link(plain, u) for u in USERS]
    attached = plan_attach(PROXY, plain, [])
    assert attached.relay_uuid is not None
    assert [vless_link(attached, u) for u in USERS] == before


def test_client_config_points_its_only_outbound_at_the_server() -> None:
    config = client_config(PROXY, USERS[0], socks_port=1080)
    (inbound,) = config["inbounds"]
    (outbound,) = config["outbounds"]
    assert inbound["listen"] == "127.0.0.1" and inbound["port"] == 1080
    server = outbound["settings"]["vnext"][0]
    assert (server["address"], server["port"]) == (PROXY.domain, 443)
    assert server["users"][0]["id"] == USERS[0].uuid
    reality = outbound["streamSettings"]["realitySettings"]
    assert reality["publicKey"] == PROXY.reality_public_key and reality["shortId"] == PROXY.reality_short_id
