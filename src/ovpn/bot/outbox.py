"""Notifications waiting for Telegram: one bounded queue, sent in order, kept and retried while Telegram is
unreachable.

Messages are of two kinds. Alerts (Alertmanager's notifications, and the results of the owner's own restarts) are
what the bot exists for; events (ovpn's deploy and test notices) are informational. When the queue is full, a
new message makes room by dropping the oldest queued event; only when no event is queued does a new alert drop the
oldest alert, and a new event is refused instead. So however many events arrive during a Telegram outage, they
can never push an alert out: an alert is lost only to a newer alert, once the queue holds nothing else. Every
dropped message is counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from ovpn.agent.metrics import Registry

log = logging.getLogger("ovpn-telegram-bot.outbox")
DEFAULT_LIMIT = 500
MAX_BACKOFF_SECONDS = 10.0

Kind = Literal["alert", "event"]
ALERT: Kind = "alert"
EVENT: Kind = "event"
Send = Callable[[int, str], Awaitable[object]]


@dataclass(eq=False)
class Message:
    """One message for one chat; compared by identity, so that a sent message is removed and not its twin."""

    chat_id: int
    text: str
    kind: Kind


class Outbox:
    def __init__(self, send: Send, metrics: Registry, limit: int = DEFAULT_LIMIT) -> None:
        self._send = send
        self._metrics = metrics
        self._queue: deque[Message] = deque()
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

    def put(self, chat_ids: Iterable[int], text: str, kind: Kind = ALERT) -> None:
        for chat_id in chat_ids:
            if len(self._queue) >= self._limit and not self._make_room(kind):
                self._count("ovpn_bot_messages_dropped_total")
                log.warning("notification queue full of alerts: refused an event")
                continue
            self._queue.append(Message(chat_id, text, kind))
        self._wake.set()

    def _make_room(self, kind: Kind) -> bool:
        """Drop the oldest event, or for an alert the oldest alert when only alerts are queued (see above)."""
        victim = next((m for m in self._queue if m.kind == EVENT), None)
        if victim is None and kind == ALERT:
            victim = self._queue[0]
        if victim is None:
            return False
        self._queue.remove(victim)
        self._count("ovpn_bot_messages_dropped_total")
        log.warning("notification queue full: dropped the oldest %s", victim.kind)
        return True

    def kick(self) -> None:
        """Retry now (Telegram answered again)."""
        self._wake.set()

    def _count(self, name: str) -> None:
        self._metrics.counter(name, "")

    def _discard(self, message: Message) -> None:
        """Remove `message` if it is still queued (a full queue may have dropped it while it was being sent)."""
        with contextlib.suppress(ValueError):
            self._queue.remove(message)

    def _refused(self, message: Message, error: TelegramError) -> None:
        self._discard(message)
        self._count("ovpn_bot_messages_failed_total")
        self._count("ovpn_bot_messages_dropped_total")
        log.error("Telegram refused a notification for chat %d: %s", message.chat_id, error.message)

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
            message = self._queue[0]
            try:
                await self._send(message.chat_id, message.text)
            except BadRequest as e:  # a NetworkError in PTB, but retrying it cannot help
                self._refused(message, e)
            except (NetworkError, RetryAfter) as e:
                self._count("ovpn_bot_messages_failed_total")
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2 or 1.0)
                if isinstance(e, RetryAfter):
                    backoff = max(backoff, e.retry_after if isinstance(e.retry_after, int | float) else 1.0)
                log.warning("sending a notification failed (%s); %d waiting, retry in %.0f s",
                            type(e).__name__, len(self._queue), backoff)  # fmt: skip
                await self._pause(backoff)
            except TelegramError as e:
                self._refused(message, e)
            else:
                self._discard(message)
                self._count("ovpn_bot_messages_sent_total")
                backoff = 0.0
