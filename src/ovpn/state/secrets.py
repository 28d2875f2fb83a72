"""Encryption at rest for secret fields: AES-256-GCM with a key from OVPN_SECRET_KEY or <data dir>/secret.key."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ovpn.errors import OvpnError

PREFIX = "enc:v1:"
KEY_FILE = "secret.key"
ENV_KEY = "OVPN_SECRET_KEY"


def _parse_key(text: str, origin: str) -> bytes:
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) == 64:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        # Standard or URL-safe base64, padded or not.
        candidates.append(base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == 32:
            return key
    raise OvpnError(
        f"the secret key in {origin} is not 32 bytes",
        "give 64 hex characters or base64 of 32 random bytes (for example `openssl rand -base64 32`)",
    )


def load_or_create_key(data_dir: Path, env: Mapping[str, str] = os.environ) -> bytes:
    if env.get(ENV_KEY):
        return _parse_key(env[ENV_KEY], ENV_KEY)
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse_key(path.read_text(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return _parse_key(path.read_text(), str(path))


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, context: str) -> str:
        if not stored.startswith(PREFIX):
            raise OvpnError(f"the stored {context} is not encrypted", "the state file was edited by hand")
        raw = base64.b64decode(stored[len(PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise OvpnError(
                f"cannot decrypt {context}: the secret key does not match the one it was stored with",
                f"restore {KEY_FILE} in the data directory or set {ENV_KEY} to the original key",
            ) from None
