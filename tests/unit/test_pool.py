import dataclasses

import pytest
from tests.support.topology import BACKEND_1, BACKEND_2, PROXY, RELAY_UUID, SOLO, server

from ovpn.core.pool import parity_problems, plan_attach, relay_fingerprint, relay_uuid_for
from ovpn.errors import OvpnError

FRESH = dataclasses.replace(BACKEND_2, name="vpn-fresh", relay_uuid=None)


def test_first_attach_provisions_a_new_identity() -> None:
    attached = plan_attach(PROXY, FRESH, [])
    assert attached.relay_uuid
    assert attached.relay_uuid != RELAY_UUID


def test_later_attaches_reuse_the_pool_identity() -> None:
    attached = plan_attach(PROXY, FRESH, [BACKEND_1])
    assert attached.relay_uuid == RELAY_UUID


def test_a_backend_keeps_its_existing_identity_when_it_founds_a_pool() -> None:
    assert relay_uuid_for(BACKEND_1, []) == RELAY_UUID


def test_attaching_twice_changes_nothing() -> None:
    assert plan_attach(PROXY, BACKEND_1, [BACKEND_1, BACKEND_2]) == BACKEND_1


def test_parity_mismatch_names_each_field_and_server() -> None:
    odd = dataclasses.replace(SOLO, reality_server_name="www.apple.com")
    with pytest.raises(OvpnError) as e:
        plan_attach(PROXY, odd, [BACKEND_1])
    message = e.value.message
    assert "REALITY public key differs" in message
    assert (
        f"vpn-nl={BACKEND_1.reality_public_key}" in message
        and f"vpn-solo={SOLO.reality_public_key}" in message
    )
    assert "REALITY server name differs: vpn-nl=www.microsoft.com, vpn-solo=www.apple.com" in message
    assert "REALITY short id differs: vpn-nl=0123456789abcdef, vpn-solo=beef" in message
    assert "relay" not in message  # the newcomer took the pool's relay UUID
    assert BACKEND_1.reality_private_key not in message
    # The hint names the way forward for the backend being attached.
    assert e.value.hint == (
        "every backend of a pool needs the same REALITY identity: `ovpn server set vpn-solo --identity-from vpn-nl` "
        "gives vpn-solo the identity of vpn-nl (it first shows whose direct links change), or attach a matching "
        "backend instead"
    )


def test_a_backend_from_another_pool_with_another_uuid_is_refused() -> None:
    elsewhere = dataclasses.replace(BACKEND_2, relay_uuid="11111111-1111-4111-8111-111111111111")
    problems = parity_problems([BACKEND_1, elsewhere])
    assert problems == [
        f"relay UUID differs: vpn-de={relay_fingerprint(elsewhere.relay_uuid)}, "
        f"vpn-nl={relay_fingerprint(RELAY_UUID)}"
    ]
    assert RELAY_UUID not in problems[0] and "11111111-1111" not in problems[0]


def test_a_proxy_cannot_be_a_backend() -> None:
    other_proxy = server("proxy-2", "proxy", "198.51.100.8", "other", "aa", proxy_preset="ru")
    with pytest.raises(OvpnError, match="proxy server and cannot be a backend"):
        plan_attach(PROXY, other_proxy, [])


def test_backends_attach_to_proxies_only() -> None:
    with pytest.raises(OvpnError, match="vpn-solo is a vpn server, not a proxy"):
        plan_attach(SOLO, BACKEND_1, [])
