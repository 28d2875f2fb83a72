"""The agent's certificate check: notBefore/notAfter read from PEM without an X.509 library, checked against
certificates the `cryptography` library makes here; malformed input fails with CertError and nothing else; the
check's metrics and /health field."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.certs import make_cert, utc
from tests.support.exposition import sample

from ovpn.agent.cert import CertError, der_validity, first_certificate_der, parse_time, pem_validity
from ovpn.agent.certcheck import CertCheck, read_status
from ovpn.agent.metrics import Registry


def test_utctime_before_2050() -> None:
    pem = make_cert(utc(2024, 1, 2, 3, 4, 5), utc(2049, 12, 31, 23, 59, 59))
    assert b"\x17\x0d491231235959Z" in first_certificate_der(pem.decode())  # encoded as UTCTime
    validity = pem_validity(pem)
    assert validity.not_before == utc(2024, 1, 2, 3, 4, 5)
    assert validity.not_after == utc(2049, 12, 31, 23, 59, 59)


def test_generalized_time_from_2050() -> None:
    pem = make_cert(utc(1999, 6, 1), utc(2050, 1, 1, 0, 0, 1))
    assert b"\x18\x0f20500101000001Z" in first_certificate_der(pem.decode())  # GeneralizedTime
    validity = pem_validity(pem)
    assert validity.not_before == utc(1999, 6, 1)
    assert validity.not_after == utc(2050, 1, 1, 0, 0, 1)


def test_two_digit_year_rule() -> None:
    assert parse_time(0x17, b"500101000000Z", "t").year == 1950
    assert parse_time(0x17, b"491231235959Z", "t").year == 2049
    assert parse_time(0x18, b"99991231235959Z", "t").year == 9999


def test_fullchain_first_certificate_wins_and_text_around_it_is_ignored() -> None:
    leaf = make_cert(utc(2025, 1, 1), utc(2025, 4, 1), "leaf")
    issuer = make_cert(utc(2020, 1, 1), utc(2030, 1, 1), "issuer")
    chain = b"subject=CN = leaf\n" + leaf + b"\n" + issuer
    assert pem_validity(chain).not_after == utc(2025, 4, 1)
    assert pem_validity(issuer + leaf).not_after == utc(2030, 1, 1)


def test_long_form_lengths() -> None:
    """The Certificate and tbsCertificate SEQUENCEs are longer than 127 bytes: long-form lengths."""
    pem = make_cert(utc(2024, 1, 1), utc(2026, 1, 1), "x" * 60)
    der = first_certificate_der(pem.decode())
    assert der[1] == 0x82 and der[5] == 0x82
    assert pem_validity(pem).not_after == utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no -----BEGIN CERTIFICATE----- line"),
        (b"garbage\n", "no -----BEGIN CERTIFICATE----- line"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "no -----END CERTIFICATE----- line"),
        (b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty"),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "expected tag 0x30"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no -----BEGIN CERTIFICATE-----"),
    ],
)
def test_malformed_pem_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        pem_validity(data)


def test_every_truncation_of_a_certificate_is_a_cert_error() -> None:
    der = first_certificate_der(make_cert(utc(2024, 1, 1), utc(2026, 1, 1)).decode())
    for size in range(len(der)):
        with pytest.raises(CertError):
            der_validity(der[:size])
    with pytest.raises(CertError, match="bytes after its end"):
        der_validity(der + b"\x00")


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"\x30\x80\x00\x00", "indefinite length"),
        (b"\x30\x85\x01\x00\x00\x00\x00", "too large"),
        (b"\x30\x82\x01", "truncated length"),
        (b"\x30\x03\x1f\x01\x00", "multi-byte tag"),
        (b"\x30\x05\x30\x03\x04\x01\x00", "serialNumber: expected tag 0x02"),
    ],
)
def test_malformed_der_is_a_clear_error(der: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        der_validity(der)


@pytest.mark.parametrize(
    ("tag", "raw", "message"),
    [
        (0x17, b"2401010000Z", "not YYMMDDHHMMSSZ"),  # no seconds
        (0x17, b"240101000000+0100", "not YYMMDDHHMMSSZ"),
        (0x18, b"20240101000000.5Z", "not YYYYMMDDHHMMSSZ"),
        (0x17, b"240230000000Z", "not a valid date"),
        (0x04, b"240101000000Z", "expected UTCTime or GeneralizedTime"),
    ],
)
def test_malformed_times_are_clear_errors(tag: int, raw: bytes, message: str) -> None:
    with pytest.raises(CertError, match=message):
        parse_time(tag, raw, "notAfter")


moments = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=150, deadline=None)
@given(not_before=moments, lifetime=st.integers(min_value=0, max_value=40 * 365 * 86400))
def test_any_validity_period_reads_back(not_before: datetime, lifetime: int) -> None:
    last = utc(9999, 12, 31, 23, 59, 59)  # clamp before adding: a datetime past year 9999 cannot exist
    not_after = not_before + min(timedelta(seconds=lifetime), last - not_before)
    validity = pem_validity(make_cert(not_before, not_after))
    assert (validity.not_before, validity.not_after) == (not_before, not_after)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_arbitrary_der_is_parsed_or_rejected_with_cert_error(der: bytes) -> None:
    with contextlib.suppress(CertError):
        der_validity(der)


@settings(max_examples=100)
@given(st.binary(max_size=48))
def test_arbitrary_pem_body_is_parsed_or_rejected_with_cert_error(der: bytes) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    with contextlib.suppress(CertError):
        pem_validity(pem)


VALID_DER = first_certificate_der(make_cert(utc(2024, 1, 1), utc(2026, 1, 1)).decode())


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=len(VALID_DER) - 1), st.integers(min_value=0, max_value=255))
def test_a_corrupted_certificate_is_parsed_or_rejected_with_cert_error(index: int, byte: int) -> None:
    der = VALID_DER[:index] + bytes([byte]) + VALID_DER[index + 1 :]
    with contextlib.suppress(CertError):
        der_validity(der)


# ------------------------------------------------------------------------------------------ the check


def test_read_status(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(make_cert(utc(2025, 1, 1), utc(2025, 4, 1, 12)))
    ok = read_status(str(cert))
    assert (ok.result, ok.expiry_timestamp) == ("ok", utc(2025, 4, 1, 12).timestamp())
    assert ok.as_json() == {"path": str(cert), "result": "ok", "not_before": "2025-01-01T00:00:00Z",
                            "not_after": "2025-04-01T12:00:00Z", "error": None}  # fmt: skip
    assert read_status("").as_json()["result"] == "not_configured"
    assert read_status("/dev/null").result == "not_configured"
    (tmp_path / "blank.pem").write_text("\n \n")
    assert read_status(str(tmp_path / "blank.pem")).result == "not_configured"
    missing = read_status(str(tmp_path / "missing.pem"))
    assert missing.result == "error" and missing.expiry_timestamp == 0
    assert "cannot read" in (missing.error or "")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    bad = read_status(str(tmp_path / "bad.pem"))
    assert bad.result == "error" and "no -----BEGIN CERTIFICATE-----" in (bad.error or "")
    assert read_status(str(tmp_path)).result == "error"  # a directory (Docker's stand-in for a missing file)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_check_runs_at_most_every_interval_and_publishes_metrics(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(make_cert(utc(2025, 1, 1), utc(2025, 4, 1)))
    clock, registry = Monotonic(), Registry()
    check = CertCheck(cert, registry, interval=600, monotonic=clock)
    assert (
        sample(registry.render(), "ovpn_agent_cert_expiry_timestamp_seconds") == 0
    )  # before the first check
    assert check.check_if_due()
    assert (
        sample(registry.render(), "ovpn_agent_cert_expiry_timestamp_seconds") == utc(2025, 4, 1).timestamp()
    )
    cert.write_text("broken")
    clock.now += 599
    assert not check.check_if_due()
    before = check.status
    assert before.result == "ok"
    clock.now += 1
    assert check.check_if_due()
    after = check.status
    assert after.result == "error"
    lines = registry.render()
    assert sample(lines, "ovpn_agent_cert_expiry_timestamp_seconds") == 0
    assert sample(lines, 'ovpn_agent_cert_checks_total{result="ok"}') == 1
    assert sample(lines, 'ovpn_agent_cert_checks_total{result="error"}') == 1
    assert sample(lines, 'ovpn_agent_cert_checks_total{result="not_configured"}') == 0
    assert sample(lines, "ovpn_agent_cert_check_failing") == 1
    cert.write_bytes(make_cert(utc(2025, 1, 1), utc(2025, 5, 1)))
    clock.now += 600
    assert check.check_if_due() and sample(registry.render(), "ovpn_agent_cert_check_failing") == 0


def test_agent_metrics_and_health_show_the_certificate(tmp_path: Path) -> None:
    from ovpn.agent.service import Agent

    cert = tmp_path / "cert.pem"
    not_after = utc(2031, 5, 6, 7, 8, 9)
    cert.write_bytes(make_cert(utc(2025, 1, 1), not_after))
    for path, expiry, result in (
        (cert, int(not_after.timestamp()), "ok"),
        ("/dev/null", 0, "not_configured"),
    ):
        agent = Agent(("127.0.0.1", 1), tmp_path / result, "t", api_timeout=0.5, cert_file=path)
        try:
            text = agent.metrics_text()
            health = agent.health()
        finally:
            agent.stop()
        assert sample(text, "ovpn_agent_cert_expiry_timestamp_seconds") == expiry
        assert sample(text, f'ovpn_agent_cert_checks_total{{result="{result}"}}') == 1
        assert sample(text, "ovpn_agent_cert_check_failing") == 0
        assert health["certificate"] == {
            "path": str(path), "result": result, "error": None,
            "not_before": "2025-01-01T00:00:00Z" if result == "ok" else None,
            "not_after": "2031-05-06T07:08:09Z" if result == "ok" else None,
        }  # fmt: skip
