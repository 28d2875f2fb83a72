"""How the bot reaches the Bot API: the official host (or OVPN_TELEGRAM_API_BASE_URL), fallback IPs for the
official host when DNS or routing fails, a record of whether Telegram answered, and a standalone test message."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, HTTPXRequest, RequestData

OFFICIAL_HOST = "api.telegram.org"
OFFICIAL_BASE_URL = f"https://{OFFICIAL_HOST}"


def bot_base_url(api_base_url: str) -> str:
    """PTB's `base_url`: the API root followed by `/bot` (PTB appends the token)."""
    return f"{(api_base_url or OFFICIAL_BASE_URL).rstrip('/')}/bot"


def scrub(text: str, token: str) -> str:
    """`text` without the token (and without the bot id part alone, which the token starts with)."""
    return text.replace(token, "<token>") if token else text


class FallbackTransport(httpx.AsyncBaseTransport):
    """Sends to `host` normally; when connecting fails, tries each fallback IP with the same Host header and
    TLS server name, so the certificate is still checked against `host`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, host: str, fallback_ips: tuple[str, ...]) -> None:
        self._inner = inner
        self._host = host
        self._fallback_ips = fallback_ips

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx.ConnectError:
            if request.url.host != self._host or not self._fallback_ips:
                raise
            last: httpx.ConnectError | None = None
            for ip in self._fallback_ips:
                retry = httpx.Request(
                    request.method,
                    request.url.copy_with(host=ip),
                    headers=request.headers,
                    stream=request.stream,
                    extensions={**request.extensions, "sni_hostname": self._host},
                )
                try:
                    return await self._inner.handle_async_request(retry)
                except httpx.ConnectError as e:
                    last = e
            assert last is not None
            raise last from None

    async def aclose(self) -> None:
        await self._inner.aclose()


def transport(api_base_url: str, fallback_ips: tuple[str, ...]) -> httpx.AsyncBaseTransport:
    host = httpx.URL(api_base_url or OFFICIAL_BASE_URL).host
    return FallbackTransport(httpx.AsyncHTTPTransport(), host, fallback_ips if not api_base_url else ())


@dataclass
class TelegramHealth:
    """Whether the Bot API answered the last request (a 5xx or a network error counts as unreachable)."""

    reachable: bool | None = None
    consecutive_failures: int = 0
    last_success: float | None = None
    last_error: str | None = None
    requests: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})
    on_recover: Callable[[], None] | None = None

    def success(self) -> None:
        recovered = self.reachable is False
        self.reachable = True
        self.consecutive_failures = 0
        self.last_success = time.time()
        self.requests["ok"] += 1
        if recovered and self.on_recover is not None:
            self.on_recover()

    def failure(self, error: str) -> None:
        self.reachable = False
        self.consecutive_failures += 1
        self.last_error = error
        self.requests["failed"] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "consecutive_failures": self.consecutive_failures,
            "last_success": self.last_success,
            "last_error": self.last_error,
        }


class RecordingRequest(HTTPXRequest):
    """PTB's httpx request that records every outcome in a TelegramHealth."""

    def __init__(self, health: TelegramHealth, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._health = health
        self._token = token

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            code, payload = await super().do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
            )
        except Exception as e:
            self._health.failure(scrub(f"{type(e).__name__}: {e}", self._token))
            raise
        if code >= 500:
            self._health.failure(f"HTTP {code}")
        else:
            self._health.success()
        return code, payload


class SendTestError(Exception):
    """Sending the test message failed; the text never contains the token."""


def send_test_message(token: str, chat_id: int, text: str, base_url: str | None = None) -> int:
    """Send `text` to `chat_id` with `token` (for `server monitor telegram-setup`); returns the message id."""
    url = f"{bot_base_url(base_url or '')}{token}/sendMessage"
    try:
        with httpx.Client(timeout=15) as client:
            response = client.post(url, json={"chat_id": chat_id, "text": text})
    except httpx.HTTPError as e:
        raise SendTestError(scrub(f"cannot reach the Bot API: {type(e).__name__}: {e}", token)) from None
    try:
        document = response.json()
    except ValueError:
        document = {}
    if response.status_code != 200 or not document.get("ok"):
        description = document.get("description") or f"HTTP {response.status_code}"
        raise SendTestError(scrub(f"the Bot API refused the message: {description}", token))
    return int(document["result"]["message_id"])
