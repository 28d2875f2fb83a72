import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovpn.core import validation
from ovpn.errors import OvpnError

SHELL_TRICKS = [
    "a;rm -rf /",
    "a b",
    "$(id)",
    "`id`",
    "a|b",
    "a&b",
    "a>b",
    "a\nb",
    "../x",
    "A-UPPER",
    "-lead",
    "trail-",
    "",
    "a" * 64,
    "x'y",
    'x"y',
]


@pytest.mark.parametrize("bad", SHELL_TRICKS)
def test_server_names_refuse_shell_metacharacters_and_spaces(bad: str) -> None:
    with pytest.raises(OvpnError, match="invalid server name"):
        validation.server_name(bad)


@given(st.text(min_size=1, max_size=70))
def test_an_accepted_server_name_is_always_shell_and_path_safe(text: str) -> None:
    try:
        name = validation.server_name(text)
    except OvpnError:
        return
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") and not name.startswith("-")


@given(st.text(min_size=1, max_size=70))
def test_an_accepted_username_is_always_shell_and_path_safe(text: str) -> None:
    try:
        name = validation.username(text)
    except OvpnError:
        return
    assert name.isascii() and all(c.isalnum() or c in "._-" for c in name) and name[0].isalnum()


@pytest.mark.parametrize(
    "good", ["203.0.113.10", "2001:db8::1", "vpn.example.net", "xn--80ak6aa92e.xn--p1ai"]
)
def test_hosts_accept_addresses_and_dns_names(good: str) -> None:
    assert validation.hostname(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a b",
        "bad;host",
        "UPPER.example",
        "-x.example",
        "ex ample.com",
        "a" * 64 + ".com",
        "host:22",
        "http://x",
    ],
)
def test_bad_hosts_are_refused(bad: str) -> None:
    with pytest.raises(OvpnError, match="invalid host"):
        validation.hostname(bad)


@pytest.mark.parametrize("bad", [0, -1, 65536])
def test_ports_outside_1_65535_are_refused(bad: int) -> None:
    with pytest.raises(OvpnError, match="invalid port"):
        validation.port(bad)


def test_reality_target_needs_host_and_port() -> None:
    assert validation.reality_target("www.microsoft.com:443") == "www.microsoft.com:443"
    for bad in ("www.microsoft.com", "www.microsoft.com:x", ":443", "a b:443", "x.com:70000"):
        with pytest.raises(OvpnError):
            validation.reality_target(bad)


def test_wildcard_server_names_are_refused() -> None:
    with pytest.raises(OvpnError, match="invalid REALITY server name"):
        validation.server_name_indication("*.microsoft.com")


def test_xray_version_strips_a_leading_v() -> None:
    assert validation.xray_version("v26.7.28") == "26.7.28"
    with pytest.raises(OvpnError):
        validation.xray_version("latest")


def test_tags_are_deduplicated_and_sorted() -> None:
    assert validation.tags("pilot, batch-1,pilot,") == ("batch-1", "pilot")
    with pytest.raises(OvpnError):
        validation.tags("ok,not ok")
