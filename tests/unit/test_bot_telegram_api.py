"""The bot's Bot API client pieces against the Bot API stand-in on loopback: the test message the CLI sends,
the fallback IPs, the notification queue, and how the process refuses a missing or rejected token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from telegram.error import BadRequest, NetworkError
from tests.support.exposition import sample
from tests.support.fake_bot_api import FakeBotApi

from ovpn.agent.metrics import Registry
from ovpn.bot.outbox import Outbox
from ovpn.bot.telegram_api import FallbackTransport, SendTestError, send_test_message

TOKEN = "987654:unit-SECRET-token"


@pytest.fixture
def fake() -> Iterator[FakeBotApi]:
    api = FakeBotApi(TOKEN).start()
    yield api
    api.stop()


def test_send_test_message(fake: FakeBotApi) -> None:
    message_id = send_test_message(TOKEN, 4242, "ovpn test", base_url=fake.base_url)
    call = fake.sent_to(4242, "ovpn test")
    assert message_id > 0 and call.params["chat_id"] == 4242


def test_test_message_errors_never_show_the_token(fake: FakeBotApi) -> None:
    with pytest.raises(SendTestError, match="Unauthorized") as refused:
        send_test_message(TOKEN + "x", 1, "hi", base_url=fake.base_url)
    assert TOKEN not in str(refused.value)
    fake.set_down(True)
    with pytest.raises(SendTestError, match="Bad Gateway") as down:
        send_test_message(TOKEN, 1, "hi", base_url=fake.base_url)
    assert TOKEN not in str(down.value)
    fake.stop()
    with pytest.raises(SendTestError, match="cannot reach") as gone:
        send_test_message(TOKEN, 1, "hi", base_url=fake.base_url)
    assert TOKEN not in str(gone.value)


def test_fallback_ips_are_tried_when_the_host_cannot_be_reached(fake: FakeBotApi) -> None:
    port = httpx.URL(fake.base_url).port
    # Nothing listens on 127.0.0.2 (the stand-in is bound to 127.0.0.1): that host refuses, its fallback answers.
    url = f"http://127.0.0.2:{port}/bot{TOKEN}/getMe"

    async def get(fallback: tuple[str, ...]) -> httpx.Response:
        transport = FallbackTransport(httpx.AsyncHTTPTransport(), "127.0.0.2", fallback)
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            return await client.get(url)

    assert asyncio.run(get(("127.0.0.3", "127.0.0.1"))).json()["result"]["username"] == "ovpn_test_bot"
    with pytest.raises(httpx.ConnectError):
        asyncio.run(get(()))


def test_outbox_keeps_messages_while_telegram_fails() -> None:
    metrics = Registry()
    delivered: list[tuple[int, str]] = []
    failures = {"left": 2}

    async def send(chat_id: int, text: str) -> None:
        if text == "refused":
            raise BadRequest("chat not found")
        if failures["left"]:
            failures["left"] -= 1
            raise NetworkError("Bad Gateway")
        delivered.append((chat_id, text))

    async def scenario() -> None:
        outbox = Outbox(send, metrics, limit=3)
        outbox.put([1], "refused")
        outbox.put([1, 2], "first")
        task = asyncio.create_task(outbox.run())
        async with asyncio.timeout(10):
            while len(delivered) < 2:  # each kick ends a back-off wait, as Telegram answering again does
                await asyncio.sleep(0.01)
                outbox.kick()
        task.cancel()

    asyncio.run(scenario())
    assert delivered == [(1, "first"), (2, "first")]
    text = metrics.render()
    assert sample(text, "ovpn_bot_messages_sent_total") == 2
    assert sample(text, "ovpn_bot_messages_failed_total") == 3
    assert sample(text, "ovpn_bot_messages_dropped_total") == 1


def test_outbox_drops_the_oldest_when_full() -> None:
    metrics = Registry()
    outbox = Outbox(lambda chat_id, text: asyncio.sleep(0), metrics, limit=2)
    outbox.put([1, 2, 3], "x")
    assert len(outbox) == 2
    assert sample(metrics.render(), "ovpn_bot_messages_dropped_total") == 1
