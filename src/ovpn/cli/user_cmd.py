"""`ovpn user ...`: global users and their links."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import click

from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, json_option, table, warn

if TYPE_CHECKING:
    from ovpn.core.model import User
    from ovpn.ops.links import LinkFormat

username_option = click.option("--username", required=True)


class UserDoc(TypedDict):
    username: str
    uuid: str
    email: str
    enabled: bool
    expiry: str | None
    expired: bool
    active: bool
    quota_bytes: int
    quota_is_default: bool
    notes: str
    tags: list[str]


def _doc(user: User) -> UserDoc:
    now = datetime.now(UTC)
    return {
        "username": user.username,
        "uuid": user.uuid,
        "email": user.email,
        "enabled": user.enabled,
        "expiry": user.expiry.isoformat() if user.expiry else None,
        "expired": user.is_expired(now),
        "active": user.is_active(now),
        "quota_bytes": user.effective_quota_bytes(),
        "quota_is_default": user.quota_bytes is None,
        "notes": user.notes,
        "tags": list(user.tags),
    }


def _state(doc: UserDoc) -> str:
    if doc["expired"]:
        return "expired"
    return "active" if doc["enabled"] else "disabled"


def _gb(n: int) -> str:
    return f"{n / 1024**3:g} GB"


def _live(ctx: Context, reset_email: str | None = None) -> list[dict[str, str]]:
    """Apply the state's users on every deployed server (in parallel, falling back to a deploy per host)."""
    from ovpn.ops.users_live import apply_users_live

    outcomes = apply_users_live(ctx.app, lambda line: click.echo(line, err=True), reset_email=reset_email)
    for outcome in outcomes:
        if outcome.result in ("deployed", "busy"):  # the operator must know the live path did not work
            warn(f"{outcome.server}: {outcome.message}")
        elif outcome.result == "failed":
            warn(f"{outcome.server}: {outcome.message}; the change is saved: run `ovpn deploy {outcome.server}` "
                 "once the host is fixed")  # fmt: skip
    return [o.as_json() for o in outcomes]


def _report(ctx: Context, servers: list[dict[str, str]]) -> None:
    from ovpn.ops.users_live import APPLY_ENV, live_enabled

    if not live_enabled(ctx.app.env):
        click.echo(f"{APPLY_ENV} is off: the next deploy carries the change")
    elif not servers:
        click.echo("no server has been deployed yet: the next deploy carries the change")
    for outcome in servers:
        click.echo(f"  {outcome['server']}: {outcome['result']} ({outcome['message']})")


def _warn_past_expiry(user: User) -> None:
    from ovpn.core.users import past_expiry_warning

    message = past_expiry_warning(user, datetime.now(UTC))
    if message:
        warn(message)


def _done(ctx: Context, user: User, verb: str, as_json: bool, reset: bool = False) -> None:
    servers = _live(ctx, user.email if reset else None)
    if as_json:
        emit_json({**_doc(user), "servers": servers})
    else:
        click.echo(f"{verb} {user.username}")
        _report(ctx, servers)


@click.group()
def user() -> None:
    """Users: one global identity on every server."""


Handler = Callable[..., None]


def _changes_users(operation: str) -> Callable[[Handler], Handler]:
    """Hold every deployed server's local lock while the state changes and the change goes live, so that a
    user change is refused (with the state untouched) while another operation of this data directory runs."""

    def wrap(f: Handler) -> Handler:
        @functools.wraps(f)
        def run(ctx: Context, /, *args: object, **kwargs: object) -> None:
            from ovpn.ops.users_live import user_change_lock

            with user_change_lock(ctx.app, operation):
                f(ctx, *args, **kwargs)

        return run

    return wrap


def _on_one_user(name: str, *options: Callable[[Handler], Handler]) -> Callable[[Handler], click.Command]:
    """`user NAME --username U [OPTIONS] [--json]`, the command getting the Context first."""

    def register(f: Handler) -> click.Command:
        f = click.pass_obj(_changes_users(f"user {name}")(f))
        stack: tuple[Callable[[Handler], Handler], ...] = (username_option, *options, json_option)
        for option in reversed(stack):
            f = option(f)
        return user.command(name)(f)

    return register


@user.command("add")
@username_option
@click.option("--uuid", help="VLESS id (generated when omitted).")
@click.option("--email", help="Stats identity (default USERNAME@global).")
@click.option("--expiry", help="Last active day, YYYY-MM-DD (UTC).")
@click.option(
    "--quota-gb",
    type=float,
    help="Rolling 30-day quota in GB (default 300), from 1 MiB (0.001) to 1 PiB (1048576).",
)
@click.option("--notes", default="")
@click.option("--tags", default="", help="Comma-separated tags, e.g. pilot,batch-1.")
@json_option
@click.pass_obj
@_changes_users("user add")
def add(
    ctx: Context,
    /,
    username: str,
    uuid: str | None,
    email: str | None,
    expiry: str | None,
    quota_gb: float | None,
    notes: str,
    tags: str,
    as_json: bool,
) -> None:
    """Add a user. Usernames and emails are unique without case (as Xray compares them); an expiry already past
    is saved with a warning."""
    from ovpn.core import validation
    from ovpn.ops.users import add_user

    created = add_user(
        ctx.app,
        username,
        uuid=uuid,
        email=email,
        expiry=validation.iso_date(expiry, "expiry") if expiry else None,
        quota_bytes=validation.quota_gb(quota_gb) if quota_gb is not None else None,
        notes=notes,
        tags=validation.tags(tags),
    )
    _warn_past_expiry(created)
    _done(ctx, created, "added", as_json)


@user.command("rm")
@username_option
@click.pass_obj
@_changes_users("user rm")
def rm(ctx: Context, /, username: str) -> None:
    """Remove a user."""
    from ovpn.ops.users import remove_user

    remove_user(ctx.app, username)
    servers = _live(ctx)
    click.echo(f"removed {username}")
    _report(ctx, servers)


@_on_one_user("enable")
def enable(ctx: Context, /, username: str, as_json: bool) -> None:
    """Enable a user."""
    from ovpn.ops.users import set_enabled

    _done(ctx, set_enabled(ctx.app, username, True), "enabled", as_json)


@_on_one_user("disable")
def disable(ctx: Context, /, username: str, as_json: bool) -> None:
    """Disable a user."""
    from ovpn.ops.users import set_enabled

    _done(ctx, set_enabled(ctx.app, username, False), "disabled", as_json)


@_on_one_user(
    "expiry-set", click.option("--date", "day", required=True, help="Last active day, YYYY-MM-DD (UTC).")
)
def expiry_set(ctx: Context, /, username: str, day: str, as_json: bool) -> None:
    """Set the last active day (also re-enables the user)."""
    from ovpn.core import validation
    from ovpn.ops.users import set_expiry

    updated = set_expiry(ctx.app, username, validation.iso_date(day))
    _warn_past_expiry(updated)
    _done(ctx, updated, "set expiry of", as_json)


@_on_one_user("expiry-clear")
def expiry_clear(ctx: Context, /, username: str, as_json: bool) -> None:
    """Remove the expiry date (also re-enables the user)."""
    from ovpn.ops.users import set_expiry

    _done(ctx, set_expiry(ctx.app, username, None), "cleared expiry of", as_json)


@_on_one_user(
    "quota-set",
    click.option(
        "--gb",
        type=float,
        required=True,
        help="Rolling 30-day quota in GB: 0 = the default, else from 1 MiB (0.001) to 1 PiB (1048576).",
    ),
)
def quota_set(ctx: Context, /, username: str, gb: float, as_json: bool) -> None:
    """Set a user's quota."""
    from ovpn.core import validation
    from ovpn.ops.users import set_quota

    _done(ctx, set_quota(ctx.app, username, validation.quota_gb(gb)), "set quota of", as_json)


@_on_one_user("quota-reset")
def quota_reset(ctx: Context, /, username: str, as_json: bool) -> None:
    """Reset a user's quota usage on every server (usage counts from now; a quota block lifts)."""
    from ovpn.ops.users import get_user

    _done(ctx, get_user(ctx.app, username), "reset the quota of", as_json, reset=True)


@user.command("list")
@click.option("--tag", help="Only users with this tag.")
@click.option("--server", "server_name", help="Show usage and runtime state on this server (from its agent).")
@json_option
@click.pass_obj
def list_(ctx: Context, /, tag: str | None, server_name: str | None, as_json: bool) -> None:
    """List users (and warn about users Xray cannot tell apart, which state from before ovpn 0007 may hold)."""
    from ovpn.ops.users import identity_clash_warnings, list_users

    docs = [_doc(u) for u in list_users(ctx.app, tag)]
    for line in identity_clash_warnings(ctx.app):
        warn(line)
    if server_name is not None:
        from ovpn.cli.stats_cmd import HEADERS, user_rows
        from ovpn.ops.users_live import server_stats

        doc = server_stats(ctx.app, server_name)
        wanted = {d["email"] for d in docs}
        doc["users"] = [u for u in doc["users"] if u["email"] in wanted]
        if as_json:
            emit_json(doc)
        else:
            table(HEADERS, user_rows(doc), title=f"{server_name} at {doc['time']}")
        return
    if as_json:
        emit_json(docs)
        return
    table(
        ["User", "Email", "State", "Expiry", "Quota", "Tags", "UUID"],
        [
            (
                d["username"],
                d["email"],
                _state(d),
                d["expiry"] or "",
                _gb(d["quota_bytes"]),
                ",".join(d["tags"]),
                d["uuid"][:8],
            )
            for d in docs
        ],
    )


@_on_one_user("show")
def show(ctx: Context, /, username: str, as_json: bool) -> None:
    """Show one user."""
    from ovpn.ops.users import get_user

    doc = _doc(get_user(ctx.app, username))
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        click.echo(f"{key:17} {value}")


@user.command("link")
@click.option("--server", "server_name", required=True)
@click.option("--username", help="One user (or use --tag).")
@click.option("--tag", help="Every user with this tag (needs --out).")
@click.option("--format", "fmt", type=click.Choice(["uri", "xray-json"]), default="uri", show_default=True)
@click.option("--qr/--no-qr", default=True, show_default=True, help="Print a terminal QR code.")
@click.option("--qr-file", type=click.Path(dir_okay=False), help="Write the QR code as a PNG (mode 0600).")
@click.option("--out", type=click.Path(file_okay=False), help="Write links and QR PNGs for --tag here.")
@click.option("--socks-port", type=int, default=10808, show_default=True, help="SOCKS port for xray-json.")
@click.option("--force", is_flag=True, help="Also give links of disabled or expired users.")
@click.pass_obj
def link(
    ctx: Context,
    /,
    server_name: str,
    username: str | None,
    tag: str | None,
    fmt: LinkFormat,
    qr: bool,
    qr_file: str | None,
    out: str | None,
    socks_port: int,
    force: bool,
) -> None:
    """Print a user's link to a server (for a proxy: the proxy's entry link).

    A disabled or expired user's link would not connect: it is refused (exit 1) unless --force. With --tag,
    the links of active users are written and each disabled or expired one is skipped with a warning; the
    command then exits 1 if any was skipped (--force writes them all).
    """
    from ovpn.core import validation
    from ovpn.errors import OvpnError
    from ovpn.ops.links import (
        client_json_text,
        qr_png,
        qr_terminal,
        user_link,
        write_private,
        write_tag_links,
    )

    if (username is None) == (tag is None):
        raise OvpnError(
            "give either --username or --tag", "--tag writes every tagged user's link into --out DIR"
        )
    validation.port(socks_port, "socks-port")
    now = datetime.now(UTC)
    if tag is not None:
        if out is None:
            raise OvpnError("--tag needs --out DIR", "links are credentials; they are written as 0600 files")
        directory = Path(out)
        batch = write_tag_links(
            ctx.app, server_name, validation.tag(tag), directory, fmt, socks_port, force=force, now=now
        )
        click.echo(f"wrote {batch.written} links for tag {tag} to {directory}")
        if batch.skipped:
            raise OvpnError(
                f"skipped {len(batch.skipped)} disabled or expired users: {', '.join(batch.skipped)}",
                "their links would not connect; enable them first, or pass --force to write them anyway",
            )
        return
    item = user_link(ctx.app, server_name, str(username), force=force, now=now)
    if fmt == "xray-json":
        click.echo(client_json_text(item, socks_port))
        return
    click.echo(item.link)
    if qr_file:
        write_private(Path(qr_file), qr_png(item.link))
        click.echo(f"QR code written to {qr_file}", err=True)
    if qr:
        click.echo(qr_terminal(item.link), nl=False)
