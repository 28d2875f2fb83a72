"""`ovpn-telegram-bot`: long polling for the owner's screens and restarts, and an HTTP server for Alertmanager's
webhook, ovpn events, /health and /metrics, in one asyncio process. Configured by OVPN_TELEGRAM_* variables."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from ovpn.agent.metrics import Registry
from ovpn.bot import handlers, http_server
from ovpn.bot.config import BotConfig, ConfigError, parse_config, read_token, read_webhook_token
from ovpn.bot.docker_api import Docker
from ovpn.bot.outbox import Outbox
from ovpn.bot.probes import Probes
from ovpn.bot.routes import make_handler
from ovpn.bot.runtime import Runtime
from ovpn.bot.standby import listen_address, serve_until_stopped
from ovpn.bot.telegram_api import RecordingRequest, TelegramHealth, bot_base_url, scrub, transport

log = logging.getLogger("ovpn-telegram-bot")
MAX_START_BACKOFF_SECONDS = 30.0


class ScrubbingFormatter(logging.Formatter):
    """Formats records (tracebacks included) without the bot token."""

    def __init__(self, token: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._token = token

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record), self._token)


def setup_logging(token: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(token))
    logging.basicConfig(level=os.environ.get("OVPN_TELEGRAM_LOG_LEVEL", "info").upper(), handlers=[handler])
    # httpx logs every request URL at INFO, and Bot API URLs carry the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def build_application(config: BotConfig, token: str, health: TelegramHealth) -> Application:  # type: ignore[type-arg]
    def request(**kwargs: float) -> RecordingRequest:
        kinds = {"transport": transport(config.api_base_url, config.fallback_ips)}
        return RecordingRequest(health, token, httpx_kwargs=kinds, **kwargs)

    return (
        ApplicationBuilder()
        .token(token)
        .base_url(bot_base_url(config.api_base_url))
        .request(request())
        .get_updates_request(request(read_timeout=10.0))
        .build()
    )


async def _until_initialized(app: Application, stop: asyncio.Event) -> bool:  # type: ignore[type-arg]
    """Retry getMe until Telegram answers (health says degraded meanwhile); False when asked to stop first."""
    backoff = 1.0
    while not stop.is_set():
        try:
            await app.initialize()
            return True
        except InvalidToken:
            raise
        except TelegramError as e:
            log.warning("Telegram is not reachable yet (%s); retrying in %.0f s", type(e).__name__, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(MAX_START_BACKOFF_SECONDS, backoff * 2)
    return False


async def run(config: BotConfig, token: str, webhook_token: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    health = TelegramHealth()
    app = build_application(config, token, health)
    metrics = Registry()

    async def send(chat_id: int, text: str) -> object:
        return await app.bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True
        )

    outbox = Outbox(send, metrics)
    health.on_recover = outbox.kick
    rt = Runtime(config, metrics, health, outbox, Docker(config.docker_socket),
                 Probes(config.agent_url, config.prometheus_url))  # fmt: skip
    handlers.register(app, rt)

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("handling an update failed: %s: %s", type(context.error).__name__, context.error)

    app.add_error_handler(on_error)
    server = await http_server.serve(make_handler(rt, webhook_token), *config.listen)
    log.info("ovpn-telegram-bot for %s (%s) on %s:%d, %d services, %d notify chats", config.server_name,
             config.server_role, *config.listen, len(config.services), len(config.notify_chat_ids))  # fmt: skip
    sender: asyncio.Task[None] | None = None
    try:
        if not await _until_initialized(app, stop):
            return
        sender = asyncio.create_task(outbox.run())
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            timeout=config.poll_timeout,
            allowed_updates=["message", "callback_query"],
            error_callback=lambda e: log.warning("polling failed: %s: %s", type(e).__name__, e),
        )
        log.info("polling Telegram")
        await stop.wait()
        await app.updater.stop()
        await app.stop()
    finally:
        if sender is not None:
            sender.cancel()
        server.close()
        with contextlib.suppress(TelegramError, RuntimeError):
            await app.shutdown()
        await rt.docker.aclose()
        await rt.probes.aclose()


def standby(reason: str) -> None:
    """Serve /health and /metrics with the reason until stopped (see ovpn.bot.standby)."""
    log.error("%s; waiting in standby (health says why) until the configuration is fixed and the bot restarted",
              reason)  # fmt: skip
    asyncio.run(serve_until_stopped(listen_address(os.environ), reason))


def main() -> None:
    try:
        config = parse_config(os.environ)
        token = read_token(config.token_file)
        webhook_token = read_webhook_token(config.webhook_token_file)
    except ConfigError as e:
        setup_logging("")
        standby(str(e))
        return
    setup_logging(token)
    try:
        asyncio.run(run(config, token, webhook_token))
    except InvalidToken:
        standby(
            f"Telegram rejected the bot token in {config.token_file}: run `ovpn server monitor telegram-setup`"
        )
