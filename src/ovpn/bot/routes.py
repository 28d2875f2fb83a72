"""The bot's HTTP endpoints: Alertmanager's webhook, ovpn events, health and metrics."""

from __future__ import annotations

import hmac
import json
import logging
import time

from ovpn.agent.metrics import Registry
from ovpn.bot.alerts import PayloadError, format_alerts, format_event, parse_event, parse_webhook
from ovpn.bot.http_server import Handler, Request, Response
from ovpn.bot.outbox import ALERT, EVENT
from ovpn.bot.runtime import Runtime

log = logging.getLogger("ovpn-telegram-bot.http")
ROUTES = {"/health": "GET", "/metrics": "GET", "/alertmanager": "POST", "/events": "POST"}
AUTHENTICATED = ("/alertmanager", "/events")
UNAUTHORIZED_METRIC = "ovpn_bot_webhook_unauthorized_total"
UNAUTHORIZED_HELP = "Requests to /alertmanager or /events refused for a missing or wrong bearer token."


def health_document(rt: Runtime) -> dict[str, object]:
    reachable = rt.health.reachable
    return {
        "status": "ok" if reachable else "degraded",
        "telegram": {True: "reachable", False: "unreachable", None: "unknown"}[reachable],
        "telegram_detail": rt.health.as_json(),
        "server": rt.config.server_name,
        "role": rt.config.server_role,
        "access_model": "owner-only",
        "owner_user_id": rt.config.owner_user_id,
        "notify_chat_count": len(rt.config.notify_chat_ids),
        "pending_messages": len(rt.outbox),
        "uptime_seconds": round(time.time() - rt.started, 1),
    }


def process_gauges(m: Registry, *, configured: bool) -> None:
    """What the bot exports in either mode: running, and whether its configuration is usable (ovpn.bot.standby)."""
    m.gauge("ovpn_bot_up", "The bot process is running.", 1)
    m.gauge("ovpn_bot_configured", "Whether the bot's configuration is usable (0: see /health for why).",
            int(configured))  # fmt: skip


def metrics_text(rt: Runtime) -> str:
    m = rt.metrics
    process_gauges(m, configured=True)
    m.gauge("ovpn_bot_telegram_reachable", "Whether the Bot API answered the last request.",
            int(bool(rt.health.reachable)))  # fmt: skip
    m.gauge("ovpn_bot_telegram_consecutive_failures", "Bot API requests failed in a row.",
            rt.health.consecutive_failures)  # fmt: skip
    m.gauge("ovpn_bot_outbox_pending", "Notifications waiting to be delivered.", len(rt.outbox))
    return m.render()


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise PayloadError("the body is not JSON") from None


def bearer_matches(authorization: str, secret: str) -> bool:
    """Whether an Authorization header carries `Bearer <secret>`, compared in constant time."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), secret.encode())


def unauthorized(reason: str) -> Response:
    return Response.json(401, {"error": reason}, headers=(("WWW-Authenticate", "Bearer"),))


def make_handler(rt: Runtime, webhook_token: str) -> Handler:
    """The bot's endpoints. /alertmanager and /events queue messages for Telegram, so they take only requests that
    carry the server's webhook token (Alertmanager reads it from its credentials file, ovpn from the bot's)."""
    for status in ("firing", "resolved"):
        rt.metrics.declare_counter("ovpn_bot_alerts_received_total", "Alerts received from Alertmanager.",
                                   {"status": status})  # fmt: skip
    rt.metrics.declare_counter(
        "ovpn_bot_events_received_total", "ovpn events received.", label_names=("kind",)
    )
    for path in AUTHENTICATED:
        rt.metrics.declare_counter(UNAUTHORIZED_METRIC, UNAUTHORIZED_HELP, {"path": path})

    async def alertmanager(body: bytes) -> Response:
        alerts = parse_webhook(_json(body))
        for alert in alerts:
            rt.metrics.counter("ovpn_bot_alerts_received_total", "Alerts received from Alertmanager.",
                               {"status": alert.status})  # fmt: skip
        if alerts:
            rt.notify(format_alerts(alerts, rt.config.server_name), ALERT)
        return Response.json(200, {"queued": bool(alerts), "alerts": len(alerts)})

    async def events(body: bytes) -> Response:
        event = parse_event(_json(body))
        rt.metrics.counter("ovpn_bot_events_received_total", "ovpn events received.", {"kind": event.kind})
        rt.notify(format_event(event, rt.config.server_name), EVENT)
        return Response.json(200, {"queued": True})

    posts = {"/alertmanager": alertmanager, "/events": events}

    async def handle(request: Request) -> Response:
        path, method = request.path, request.method
        expected = ROUTES.get(path)
        if expected is None:
            return Response.json(404, {"error": f"no endpoint {path}"})
        if method != expected:
            return Response.json(405, {"error": f"{path} takes {expected}"})
        if path == "/health":
            return Response.json(200, health_document(rt))
        if path == "/metrics":
            return Response(200, metrics_text(rt).encode(), "text/plain; version=0.0.4")
        if not request.authorization:
            return refuse(path, "missing bearer token")
        if not bearer_matches(request.authorization, webhook_token):
            return refuse(path, "wrong bearer token")
        try:
            return await posts[path](request.body)
        except PayloadError as e:
            log.warning("refused a %s body: %s", path, e)
            return Response.json(400, {"error": str(e)})

    def refuse(path: str, reason: str) -> Response:
        rt.metrics.counter(UNAUTHORIZED_METRIC, UNAUTHORIZED_HELP, {"path": path})
        log.warning("refused POST %s: %s", path, reason)
        return unauthorized(reason)

    return handle
