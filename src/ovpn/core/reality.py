"""REALITY keys and short ids, encoded the way Xray's `x25519` command prints them."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ovpn.errors import InvalidInput

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
_SHORT_ID_RE = re.compile(r"^(?:[0-9a-f]{2}){0,8}\Z")


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_key(value: str, what: str) -> bytes:
    if not _B64URL_RE.match(value):
        raise InvalidInput(
            f"malformed REALITY {what} key",
            "keys are 43 characters of URL-safe base64 without padding (as `xray x25519` prints them)",
        )
    try:
        raw = base64.urlsafe_b64decode(value + "=")
    except binascii.Error:
        raise InvalidInput(f"malformed REALITY {what} key", "the key is not valid URL-safe base64") from None
    if _b64u(raw) != value:
        raise InvalidInput(f"malformed REALITY {what} key", "the key's last character has stray bits set")
    return raw


def _clamp(raw: bytes) -> bytes:
    k = bytearray(raw)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def public_from_private(private_key: str) -> str:
    raw = _decode_key(private_key, "private")
    pub = X25519PrivateKey.from_private_bytes(raw).public_key()
    return _b64u(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def generate_key_pair() -> KeyPair:
    private = _b64u(_clamp(secrets.token_bytes(32)))
    return KeyPair(private, public_from_private(private))


def key_pair(private_key: str | None, public_key: str | None) -> KeyPair:
    """Generate a pair when neither half is given; check the halves agree when they are."""
    if private_key is None and public_key is None:
        return generate_key_pair()
    if private_key is None:
        raise InvalidInput(
            "a REALITY public key was given without its private key",
            "pass --reality-private-key too, or neither to generate a pair",
        )
    derived = public_from_private(private_key)
    if public_key is not None:
        _decode_key(public_key, "public")
        if public_key != derived:
            raise InvalidInput(
                "the REALITY public key does not match the private key",
                f"the private key's public key is {derived}; omit --reality-public-key to derive it",
            )
    return KeyPair(private_key, derived)


def short_id(value: str) -> str:
    if not _SHORT_ID_RE.match(value):
        raise InvalidInput(
            f"malformed REALITY short id {value!r}",
            "a short id is lower-case hex of even length, at most 16 characters",
        )
    return value


def generate_short_id() -> str:
    return secrets.token_hex(8)
