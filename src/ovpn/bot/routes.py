"""The bot's HTTP endpoints: Alertmanager's webhook, ovpn events, health and metrics."""

from __future__ import annotations

import json
import logging
import time

from ovpn.agent.metrics import Registry
from ovpn.bot.alerts import PayloadError, format_alerts, format_event, parse_event, parse_webhook
from ovpn.bot.http_server import Handler, Response
from ovpn.bot.runtime import Runtime

log = logging.getLogger("ovpn-telegram-bot.http")
ROUTES = {"/health": "GET", "/metrics": "GET", "/alertmanager": "POST", "/events": "POST"}


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
    return "\n".join(m.render()) + "\n"


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise PayloadError("the body is not JSON") from None


def make_handler(rt: Runtime) -> Handler:
    for status in ("firing", "resolved"):
        rt.metrics.declare_counter("ovpn_bot_alerts_received_total", "Alerts received from Alertmanager.",
                                   {"status": status})  # fmt: skip
    rt.metrics.declare_counter("ovpn_bot_events_received_total", "ovpn events received.")

    async def handle(method: str, path: str, body: bytes) -> Response:
        expected = ROUTES.get(path)
        if expected is None:
            return Response.json(404, {"error": f"no endpoint {path}"})
        if method != expected:
            return Response.json(405, {"error": f"{path} takes {expected}"})
        if path == "/health":
            return Response.json(200, health_document(rt))
        if path == "/metrics":
            return Response(200, metrics_text(rt).encode(), "text/plain; version=0.0.4")
        try:
            if path == "/alertmanager":
                alerts = parse_webhook(_json(body))
                for alert in alerts:
                    rt.metrics.counter("ovpn_bot_alerts_received_total", "Alerts received from Alertmanager.",
                                       {"status": alert.status})  # fmt: skip
                if alerts:
                    rt.notify(format_alerts(alerts, rt.config.server_name))
                return Response.json(200, {"queued": bool(alerts), "alerts": len(alerts)})
            event = parse_event(_json(body))
            rt.metrics.counter(
                "ovpn_bot_events_received_total", "ovpn events received.", {"kind": event.kind}
            )
            rt.notify(format_event(event, rt.config.server_name))
            return Response.json(200, {"queued": True})
        except PayloadError as e:
            log.warning("refused a %s body: %s", path, e)
            return Response.json(400, {"error": str(e)})

    return handle
