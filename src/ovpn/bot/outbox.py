"""Notifications waiting for Telegram: a bounded queue, sent in order, kept and retried while Telegram is
unreachable; the oldest are dropped (and counted) only when the queue is full."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from ovpn.agent.metrics import Registry

log = logging.getLogger("ovpn-telegram-bot.outbox")
DEFAULT_LIMIT = 500
MAX_BACKOFF_SECONDS = 10.0

Send = Callable[[int, str], Awaitable[object]]


class Outbox:
    def __init__(self, send: Send, metrics: Registry, limit: int = DEFAULT_LIMIT) -> None:
        self._send = send
        self._metrics = metrics
        self._queue: deque[tuple[int, str]] = deque()
        self._limit = limit
        self._wake = asyncio.Event()
        for name, text in (
            ("ovpn_bot_messages_sent_total", "Notifications delivered to Telegram."),
            ("ovpn_bot_messages_failed_total", "Failed attempts to deliver a notification."),
            (
                "ovpn_bot_messages_dropped_total",
                "Notifications given up (queue full or refused by Telegram).",
            ),
        ):
            metrics.declare_counter(name, text)

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, chat_ids: Iterable[int], text: str) -> None:
        for chat_id in chat_ids:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self._count("ovpn_bot_messages_dropped_total")
                log.warning("notification queue full: dropped the oldest message")
            self._queue.append((chat_id, text))
        self._wake.set()

    def kick(self) -> None:
        """Retry now (Telegram answered again)."""
        self._wake.set()

    def _count(self, name: str) -> None:
        self._metrics.counter(name, "")

    def _refused(self, chat_id: int, error: TelegramError) -> None:
        self._queue.popleft()
        self._count("ovpn_bot_messages_failed_total")
        self._count("ovpn_bot_messages_dropped_total")
        log.error("Telegram refused a notification for chat %d: %s", chat_id, error.message)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def run(self) -> None:
        backoff = 0.0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            chat_id, text = self._queue[0]
            try:
                await self._send(chat_id, text)
            except BadRequest as e:  # a NetworkError in PTB, but retrying it cannot help
                self._refused(chat_id, e)
            except (NetworkError, RetryAfter) as e:
                self._count("ovpn_bot_messages_failed_total")
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2 or 1.0)
                if isinstance(e, RetryAfter):
                    backoff = max(backoff, e.retry_after if isinstance(e.retry_after, int | float) else 1.0)
                log.warning("sending a notification failed (%s); %d waiting, retry in %.0f s",
                            type(e).__name__, len(self._queue), backoff)  # fmt: skip
                await self._pause(backoff)
            except TelegramError as e:
                self._refused(chat_id, e)
            else:
                if self._queue and self._queue[0] == (chat_id, text):
                    self._queue.popleft()
                self._count("ovpn_bot_messages_sent_total")
                backoff = 0.0
