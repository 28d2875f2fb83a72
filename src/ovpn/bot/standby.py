"""The bot with an unusable configuration (no owner id, an unreadable token, a token Telegram rejects).

Exiting would make Compose restart it in a loop, so it stays up instead and says why: /health answers 503 with
the reason (the container shows unhealthy, `ovpn server monitor status` and the health waits print it), /metrics
exports `ovpn_bot_configured 0` for the OvpnTelegramBotMisconfigured alert, and the webhooks answer 503 so that
Alertmanager keeps its notifications and retries. The webhooks' answer names no reason: the bot cannot check a
caller's token here (that file may be what is broken), so it tells callers nothing about its configuration."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping

from ovpn.agent.metrics import Registry
from ovpn.bot import http_server
from ovpn.bot.config import DEFAULT_LISTEN, ConfigError, parse_listen
from ovpn.bot.http_server import Handler, Request, Response
from ovpn.bot.routes import AUTHENTICATED, process_gauges

STATUS = "misconfigured"


def listen_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where to serve: OVPN_TELEGRAM_LISTEN, or the default when that is what is broken."""
    try:
        return parse_listen(env.get("OVPN_TELEGRAM_LISTEN", DEFAULT_LISTEN))
    except ConfigError:
        return parse_listen(DEFAULT_LISTEN)


def metrics_text() -> str:
    m = Registry()
    process_gauges(m, configured=False)
    return m.render()


def make_handler(reason: str) -> Handler:
    async def handle(request: Request) -> Response:
        method, path = request.method, request.path
        if path == "/health" and method == "GET":
            return Response.json(503, {"status": STATUS, "reason": reason})
        if path == "/metrics" and method == "GET":
            return Response(200, metrics_text().encode(), "text/plain; version=0.0.4")
        if path in AUTHENTICATED and method == "POST":
            return Response.json(503, {"error": "the bot is not ready"})
        return Response.json(404, {"error": f"no endpoint {method} {path}"})

    return handle


async def serve_until_stopped(listen: tuple[str, int], reason: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await http_server.serve(make_handler(reason), *listen)
    try:
        await stop.wait()
    finally:
        server.close()
