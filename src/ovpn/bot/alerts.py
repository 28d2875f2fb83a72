"""Alertmanager webhook (v4) and ovpn event payloads, parsed and turned into Telegram HTML messages (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

MESSAGE_LIMIT = 4000  # Telegram's limit is 4096 characters; leave room for the "more" line
SHOWN_LABELS = ("instance", "backend", "service", "name", "email")
FIELD_LIMIT = 600


class PayloadError(Exception):
    """A webhook or event body that cannot be relayed."""


@dataclass(frozen=True)
class Alert:
    status: Literal["firing", "resolved"]
    name: str
    severity: str
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...]


def _text(value: object) -> str:
    return value.strip()[:FIELD_LIMIT] if isinstance(value, str) else ""


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def parse_webhook(document: object) -> list[Alert]:
    """The alerts of one Alertmanager webhook call (version 4)."""
    body = _mapping(document, "the webhook body")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError("the webhook body has no alerts list")
    alerts = []
    for raw in raw_alerts:
        item = _mapping(raw, "an alert")
        labels = _mapping(item.get("labels"), "alert labels")
        annotations = _mapping(item.get("annotations"), "alert annotations")
        status = item.get("status") or body.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alert status must be firing or resolved, got {status!r}")
        alerts.append(
            Alert(
                status=status,
                name=_text(labels.get("alertname")) or "unnamed alert",
                severity=_text(labels.get("severity")),
                summary=_text(annotations.get("summary")),
                description=_text(annotations.get("description")),
                labels=tuple((key, _text(labels[key])) for key in SHOWN_LABELS if _text(labels.get(key))),
            )
        )
    return alerts


def format_alert(alert: Alert) -> str:
    mark = "🔥" if alert.status == "firing" else "✅"
    head = f"{mark} <b>{escape(alert.name)}</b>"
    if alert.severity:
        head += f" [{escape(alert.severity)}]"
    lines = [head]
    if alert.summary:
        lines.append(escape(alert.summary))
    if alert.description and alert.description != alert.summary:
        lines.append(f"<i>{escape(alert.description)}</i>")
    if alert.labels:
        lines.append(" · ".join(f"{escape(k)}: <code>{escape(v)}</code>" for k, v in alert.labels))
    return "\n".join(lines)


def format_alerts(alerts: list[Alert], server: str) -> str:
    """One message per webhook call: a heading with the counts, then each alert, cut to Telegram's limit."""
    firing = sum(1 for a in alerts if a.status == "firing")
    resolved = len(alerts) - firing
    counts = [f"FIRING {firing}"] if firing else []
    counts += [f"RESOLVED {resolved}"] if resolved else []
    text = f"<b>[{' · '.join(counts) or 'no alerts'}]</b> on <b>{escape(server)}</b>"
    ordered = sorted(alerts, key=lambda a: a.status != "firing")
    for shown, alert in enumerate(ordered):
        block = format_alert(alert)
        rest = len(ordered) - shown
        if len(text) + len(block) + 40 > MESSAGE_LIMIT:
            return f"{text}\n\n… and {rest} more"
        text += f"\n\n{block}"
    return text


@dataclass(frozen=True)
class Event:
    kind: str
    server: str
    message: str


def parse_event(document: object) -> Event:
    body = _mapping(document, "the event body")
    kind, server, message = (_text(body.get(key)) for key in ("kind", "server", "message"))
    if not kind or not message:
        raise PayloadError('an event needs string fields "kind" and "message"')
    return Event(kind, server, message)


def format_event(event: Event, default_server: str) -> str:
    return f"📣 <b>{escape(event.kind)}</b> on <b>{escape(event.server or default_server)}</b>\n{escape(event.message)}"
