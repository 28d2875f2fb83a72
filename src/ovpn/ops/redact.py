"""Secrets out of what ovpn prints about a bundle (`deploy --plan`), while a change to one stays visible.

A secret becomes `<secret 1a2b3c4d>`: eight hex characters of an HMAC under a key made for one plan. Equal values
get equal tags within that plan, so a diff shows whether a secret changed, and no tag can be matched to a value
or to another run's tag. Secrets are found by where they sit, not by what they look like:

* JSON files: any member whose name holds `privateKey`, `password`, `secret` or `token`, and the `id` of every
  entry of a `clients` or `users` list (VLESS UUIDs: the relay identity and every user's credential).
* `.env`: a variable whose name holds TOKEN, PASSWORD, SECRET or KEY.
* Every value found so far is also replaced wherever else it appears in the text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

SECRET_MEMBER_WORDS = ("privatekey", "password", "secret", "token")
CREDENTIAL_LISTS = ("clients", "users")
SECRET_ENV_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
# Shorter values are not secrets ovpn makes, and replacing them everywhere would garble the text.
MIN_SCRUBBED_LENGTH = 8


class Redactor:
    """Masks the secrets of the texts it is given; remembers every value so `scrub` can catch copies."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._seen: dict[str, str] = {}

    def placeholder(self, value: str) -> str:
        tag = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:8]
        masked = f"<secret {tag}>"
        if len(value) >= MIN_SCRUBBED_LENGTH:
            self._seen[value] = masked
        return masked

    def json_text(self, text: str) -> str | None:
        """The JSON document with its secret members masked, laid out as ovpn renders JSON; None if it is not
        JSON (the caller must then not print it)."""
        try:
            document = json.loads(text)
        except ValueError:
            return None
        return json.dumps(self._mask(document, None), indent=2, sort_keys=False) + "\n"

    def _mask(self, node: Any, list_name: str | None) -> Any:
        if isinstance(node, list):
            return [self._mask(item, list_name) for item in node]
        if not isinstance(node, dict):
            return node
        masked: dict[str, Any] = {}
        for name, value in node.items():
            lowered = name.lower()
            credential = name == "id" and list_name in CREDENTIAL_LISTS
            if isinstance(value, str) and (credential or any(w in lowered for w in SECRET_MEMBER_WORDS)):
                masked[name] = self.placeholder(value)
            else:
                masked[name] = self._mask(value, name if isinstance(value, list) else None)
        return masked

    def env_lines(self, text: str) -> list[str]:
        lines = []
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            secret = bool(sep) and any(w in name.upper() for w in SECRET_ENV_WORDS)
            lines.append(f"{name}={self.placeholder(value)}" if secret else line)
        return lines

    def scrub(self, line: str) -> str:
        """`line` with every secret value seen so far replaced by its placeholder."""
        for value, masked in sorted(self._seen.items(), key=lambda item: -len(item[0])):
            if value in line:
                line = line.replace(value, masked)
        return line
