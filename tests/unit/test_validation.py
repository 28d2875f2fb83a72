import ipaddress
import math
import socket

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ovpn.core import validation
from ovpn.core.model import MAX_PRIORITY, MAX_QUOTA_BYTES, MIN_QUOTA_BYTES
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


@example("0\n")
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


# inet_aton's short, decimal, octal and hex forms of IPv4, and names whose last label is a number.
NUMBER_HOSTS = [
    "1.2.3",
    "127.1",
    "0x7f.1",
    "2130706433",
    "017700000001",
    "999.1.1.1",
    "1.2.3.4.5",
    "vpn.0x1",
    "a.08",
]


@pytest.mark.parametrize("bad", NUMBER_HOSTS)
def test_hosts_that_read_as_numbers_are_refused(bad: str) -> None:
    with pytest.raises(OvpnError, match="reads as a number"):
        validation.hostname(bad)


@pytest.mark.parametrize("good", ["vpn.cafe", "x.bad", "1.example", "0x7f.example", "10-0-0-1.nip.example"])
def test_hex_letters_and_leading_digits_are_still_names(good: str) -> None:
    assert validation.hostname(good) == good


@pytest.mark.parametrize("bad", ["fe80::1%eth0", "fe80::1%;reboot", "::1%$(id)"])
def test_an_address_with_a_zone_is_refused(bad: str) -> None:
    with pytest.raises(OvpnError, match="invalid host"):
        validation.hostname(bad)


def _resolver_reads_as_address(name: str) -> bool:
    try:
        socket.inet_aton(name)
    except OSError:
        pass
    else:
        return True
    try:
        socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return False
    return True


@example("127.1")
@example("0x7f.1")
@example("2130706433")
@example("1.2.3.4.5")
@example("a..")
@given(st.one_of(st.text(alphabet="0123456789abcdefx.:-%", max_size=24), st.text(max_size=24)))
def test_an_accepted_host_is_an_address_or_a_name_no_resolver_reads_as_one(text: str) -> None:
    try:
        host = validation.hostname(text)
    except OvpnError:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        assert not _resolver_reads_as_address(host) and not _resolver_reads_as_address(text)
        assert not host.rsplit(".", 1)[-1].isdigit()
    else:
        assert "%" not in host


@pytest.mark.parametrize(
    ("gb", "expected"), [(0, 0), (300, 300 * 1024**3), (0.001, 1073741), (1024**2, MAX_QUOTA_BYTES)]
)
def test_quotas_in_range_become_bytes(gb: float, expected: int) -> None:
    assert validation.quota_gb(gb) == expected


@pytest.mark.parametrize("gb", [-1, math.inf, -math.inf, math.nan, 1e30, 1e300, 1024**2 + 1])
def test_quotas_out_of_range_are_refused(gb: float) -> None:
    with pytest.raises(OvpnError, match="invalid quota"):
        validation.quota_gb(gb)


@pytest.mark.parametrize("gb", [1e-12, 0.0009])
def test_a_positive_quota_under_one_mib_is_refused_not_made_the_default(gb: float) -> None:
    with pytest.raises(OvpnError, match="less than 1 MiB"):
        validation.quota_gb(gb)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_an_accepted_quota_is_zero_or_between_one_mib_and_one_pib(gb: float) -> None:
    try:
        quota = validation.quota_gb(gb)
    except OvpnError:
        return
    assert quota == 0 or MIN_QUOTA_BYTES <= quota <= MAX_QUOTA_BYTES


@pytest.mark.parametrize("bad", [-1, MAX_PRIORITY + 1, 99999999999999999999999])
def test_priorities_outside_the_bound_are_refused(bad: int) -> None:
    with pytest.raises(OvpnError, match="invalid priority"):
        validation.priority(bad)


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (validation.username, "alice\n"),
        (validation.server_name, "vpn-nl\n"),
        (validation.email, "alice@global\n"),
        (validation.ssh_user, "root\n"),
        (validation.image_reference, "grafana/grafana:12\n"),
        (validation.xray_version, "26.3.27\n"),
        (validation.hostname, "vpn.example.net\n"),
    ],
)
def test_a_value_with_a_trailing_newline_is_refused(check: object, value: str) -> None:
    """`$` in a pattern also matches before a final newline: values that reach .env files and command lines are
    checked to their very end."""
    assert callable(check)
    with pytest.raises(OvpnError):
        check(value)
