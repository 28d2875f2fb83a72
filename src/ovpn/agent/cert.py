"""The validity period of a PEM certificate, read with the standard library only (the agent's image has no
X.509 library): the first `CERTIFICATE` block is base64-decoded and its DER walked just far enough to reach
`tbsCertificate.validity` (RFC 5280, section 4.1). Anything else in the certificate is skipped, not checked.

Every malformed input raises `CertError` with what was wrong; nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

BEGIN = "-----BEGIN CERTIFICATE-----"
END = "-----END CERTIFICATE-----"

TAG_INTEGER = 0x02
TAG_SEQUENCE = 0x30
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_VERSION = 0xA0  # [0] EXPLICIT, constructed

_UTC_TIME = re.compile(rb"^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z\Z")
_GENERALIZED_TIME = re.compile(rb"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z\Z")


class CertError(ValueError):
    """The input is not a certificate this module can read; the message says why."""


class Validity(NamedTuple):
    """The certificate's validity period (notBefore, notAfter), in UTC."""

    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Element:
    """One DER TLV: its tag, and where its contents start and end in the buffer."""

    tag: int
    start: int
    end: int


def read_element(der: bytes, offset: int, limit: int, what: str) -> Element:
    """The TLV at `offset`, which must end by `limit` (the end of the enclosing element)."""
    if offset + 2 > limit:
        raise CertError(f"{what}: truncated (no tag and length at byte {offset})")
    tag, first = der[offset], der[offset + 1]
    if tag & 0x1F == 0x1F:
        raise CertError(f"{what}: multi-byte tag at byte {offset} (not expected in a certificate header)")
    start = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise CertError(f"{what}: indefinite length at byte {offset} (not DER)")
    else:
        count = first & 0x7F
        if count > 4:
            raise CertError(f"{what}: length of {count} bytes at byte {offset} is too large")
        if start + count > limit:
            raise CertError(f"{what}: truncated length at byte {offset}")
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + length > limit:
        raise CertError(f"{what}: {length} content bytes at byte {offset} run past the end of the data")
    return Element(tag, start, start + length)


def expect(der: bytes, offset: int, limit: int, tag: int, what: str) -> Element:
    element = read_element(der, offset, limit, what)
    if element.tag != tag:
        raise CertError(f"{what}: expected tag 0x{tag:02x}, found 0x{element.tag:02x} at byte {offset}")
    return element


def parse_time(tag: int, raw: bytes, what: str) -> datetime:
    """UTCTime (YYMMDDHHMMSSZ; YY >= 50 is 19YY, else 20YY) or GeneralizedTime (YYYYMMDDHHMMSSZ), in UTC."""
    if tag == TAG_UTC_TIME:
        match = _UTC_TIME.match(raw)
        if match is None:
            raise CertError(f"{what}: UTCTime {raw!r} is not YYMMDDHHMMSSZ")
        yy = int(match[1])
        year = 1900 + yy if yy >= 50 else 2000 + yy
    elif tag == TAG_GENERALIZED_TIME:
        match = _GENERALIZED_TIME.match(raw)
        if match is None:
            raise CertError(f"{what}: GeneralizedTime {raw!r} is not YYYYMMDDHHMMSSZ")
        year = int(match[1])
    else:
        raise CertError(f"{what}: expected UTCTime or GeneralizedTime, found tag 0x{tag:02x}")
    month, day, hour, minute, second = (int(match[i]) for i in range(2, 7))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise CertError(f"{what}: {raw!r} is not a valid date and time ({e})") from None


def der_validity(der: bytes) -> Validity:
    """Certificate -> tbsCertificate -> [version], serialNumber, signature, issuer, validity."""
    cert = expect(der, 0, len(der), TAG_SEQUENCE, "Certificate")
    if cert.end != len(der):
        raise CertError(f"Certificate: {len(der) - cert.end} bytes after its end")
    tbs = expect(der, cert.start, cert.end, TAG_SEQUENCE, "tbsCertificate")
    offset = tbs.start
    if read_element(der, offset, tbs.end, "tbsCertificate").tag == TAG_VERSION:
        offset = read_element(der, offset, tbs.end, "version").end
    offset = expect(der, offset, tbs.end, TAG_INTEGER, "serialNumber").end
    offset = expect(der, offset, tbs.end, TAG_SEQUENCE, "signature").end
    offset = expect(der, offset, tbs.end, TAG_SEQUENCE, "issuer").end
    validity = expect(der, offset, tbs.end, TAG_SEQUENCE, "validity")
    before = read_element(der, validity.start, validity.end, "notBefore")
    after = read_element(der, before.end, validity.end, "notAfter")
    if after.end != validity.end:
        raise CertError("validity: more than notBefore and notAfter")
    return Validity(
        not_before=parse_time(before.tag, der[before.start : before.end], "notBefore"),
        not_after=parse_time(after.tag, der[after.start : after.end], "notAfter"),
    )


def first_certificate_der(pem: str) -> bytes:
    """The DER of the first CERTIFICATE block (a fullchain's leaf); text around the blocks is ignored."""
    begin = pem.find(BEGIN)
    if begin < 0:
        raise CertError(f"no {BEGIN} line")
    end = pem.find(END, begin)
    if end < 0:
        raise CertError(f"no {END} line after {BEGIN}")
    body = "".join(pem[begin + len(BEGIN) : end].split())
    if not body:
        raise CertError("the CERTIFICATE block is empty")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CertError(f"the CERTIFICATE block is not valid base64 ({e})") from None


def pem_validity(data: bytes) -> Validity:
    """notBefore and notAfter of the first certificate in a PEM file's bytes."""
    return der_validity(first_certificate_der(data.decode("latin-1")))
