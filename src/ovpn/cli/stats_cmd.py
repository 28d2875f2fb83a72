"""`ovpn stats --server S [--user U]`: usage and state per user on one server, as its agent counts them."""

from __future__ import annotations

from typing import Any

import click

from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, json_option, table


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def user_rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for u in doc["users"]:
        state = "expired" if u["expired"] else "blocked (quota)" if u["blocked_by_quota"] else (
            "active" if u["enabled"] else "disabled")  # fmt: skip
        rows.append((
            u["email"], state, "yes" if u["in_runtime"] else "no" if u["in_runtime"] is False else "?",
            _bytes(u["uplink_bytes"]), _bytes(u["downlink_bytes"]), _bytes(u["window_30d_usage_bytes"]),
            _bytes(u["quota_bytes"]), f"{u['quota_usage_ratio'] * 100:.1f}%", u["expiry"] or "",
        ))  # fmt: skip
    return rows


HEADERS = ["Email", "State", "In Xray", "Up", "Down", "30 days", "Quota", "Used", "Expiry"]


@click.command("stats")
@click.option("--server", "server_name", required=True)
@click.option("--user", "username", help="Only this user.")
@json_option
@click.pass_obj
def stats(ctx: Context, /, server_name: str, username: str | None, as_json: bool) -> None:
    """Traffic, quota use and state per user on one server (from its agent)."""
    from ovpn.ops.users import get_user
    from ovpn.ops.users_live import server_stats

    email = get_user(ctx.app, username).email if username else None
    doc = server_stats(ctx.app, server_name, email)
    if as_json:
        emit_json(doc)
        return
    table(HEADERS, user_rows(doc), title=f"{server_name} at {doc['time']}")
