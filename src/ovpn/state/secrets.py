"""Encryption at rest for secret fields: AES-256-GCM with a key from OVPN_SECRET_KEY or <data dir>/secret.key."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ovpn.errors import OvpnError
from ovpn.state.db import tighten

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


def _missing_hint() -> str:
    return f"restore {KEY_FILE} into the data directory from a backup, or set {ENV_KEY} to the original key"


def load_key(data_dir: Path, env: Mapping[str, str] = os.environ) -> bytes | None:
    """The key from $OVPN_SECRET_KEY or <data dir>/secret.key; None when there is neither."""
    if env.get(ENV_KEY):
        return _parse_key(env[ENV_KEY], ENV_KEY)
    path = data_dir / KEY_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "it is not text"
        raise OvpnError(f"cannot read the secret key {path}: {reason}", _missing_hint()) from None
    tighten(path)
    return _parse_key(text, str(path))


def missing_key(data_dir: Path) -> OvpnError:
    """The refusal when the state holds encrypted values but no key is there: a new key would split the state."""
    return OvpnError(
        f"{data_dir / KEY_FILE} is missing (and {ENV_KEY} is not set), but the state holds encrypted secrets",
        _missing_hint(),
    )


def create_key(data_dir: Path) -> bytes:
    """Write a new random key (0600) and return it; if another process wrote one first, return theirs.

    The key is written to a scratch file and linked into place, so `secret.key` never exists half-written.
    """
    path = data_dir / KEY_FILE
    scratch = data_dir / f".{KEY_FILE}.new-{os.getpid()}"
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    except OSError as e:
        raise OvpnError(
            f"cannot write the secret key {path}: {e.strerror}", "check that the data directory is writable"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    key = load_key(data_dir, {})
    if key is None:
        raise OvpnError(f"the secret key {path} vanished as it was written", "run the command again")
    return key


class KeyMismatch(OvpnError):
    """A sealed value does not open with this key: it was stored under another one."""


class SecretBox:
    """Seals and opens secret fields. The key may be given late (a callable), so commands that never touch a
    secret never need one."""

    def __init__(self, key: bytes | Callable[[], bytes]) -> None:
        self._key = key
        self._cipher: AESGCM | None = None

    @property
    def _aead(self) -> AESGCM:
        if self._cipher is None:
            self._cipher = AESGCM(self._key if isinstance(self._key, bytes) else self._key())
        return self._cipher

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, context: str) -> str:
        if not stored.startswith(PREFIX):
            raise OvpnError(f"the stored {context} is not encrypted", "the state file was edited by hand")
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < 12 + 16:
            raise OvpnError(
                f"the stored {context} is damaged", "the state file was edited by hand: restore it"
            )
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise KeyMismatch(
                f"cannot decrypt {context}: the secret key does not match the one it was stored with",
                f"restore {KEY_FILE} in the data directory or set {ENV_KEY} to the original key",
            ) from None
