"""`ovpn server monitor up|down|status`: the optional monitoring stack on a deployed host."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ovpn.cli.context import Context
from ovpn.cli.fleet_cmd import _progress, pull_option
from ovpn.cli.output import emit_json, json_option, table

if TYPE_CHECKING:
    from ovpn.ops.monitor import ServiceState


@click.group()
def monitor() -> None:
    """The monitoring stack (Prometheus, Alertmanager, Grafana, node exporter, cAdvisor, the Telegram bot)."""


def _service_rows(services: list[ServiceState]) -> list[tuple[str, str, str, str]]:
    return [
        (s.service, s.describe(), s.status, "" if s.expected else "not expected (no bot token)")
        for s in services
    ]


@monitor.command("up")
@click.argument("name")
@pull_option
@click.option(
    "--timeout",
    type=click.IntRange(10, 1800),
    default=180,
    show_default=True,
    help="Seconds to wait for health.",
)
@click.option("--accept-new-host-key", is_flag=True, help="First contact: pin the host's SSH key.")
@json_option
@click.pass_obj
def up(ctx: Context, /, name: str, pull: str, timeout: int, accept_new_host_key: bool, as_json: bool) -> None:
    """Start the monitoring stack next to the live release and wait until it is healthy."""
    from ovpn.ops.monitor import up as do_up

    result = do_up(ctx.app, name, pull, _progress(name, as_json), timeout, accept_new_host_key)
    if as_json:
        emit_json(result.to_json())
        return
    for message in result.messages:
        click.echo(message)
    table(
        ["Service", "State", "Status", "Note"], _service_rows(result.services), title=f"{name}: monitoring up"
    )


@monitor.command("down")
@click.argument("name")
@click.option(
    "--purge-data", is_flag=True, help="Also remove the monitoring volumes (metrics, alerts, Grafana)."
)
@click.option("--yes", is_flag=True, help="Do not ask before --purge-data removes the volumes.")
@json_option
@click.pass_obj
def down(ctx: Context, /, name: str, purge_data: bool, yes: bool, as_json: bool) -> None:
    """Stop and remove the monitoring containers; xray, haproxy and the agent keep running, volumes are kept."""
    from ovpn.errors import OvpnError
    from ovpn.ops.monitor import VOLUMES
    from ovpn.ops.monitor import down as do_down

    if purge_data and not yes:
        if as_json:
            raise OvpnError("--purge-data with --json needs --yes", "add --yes to remove the volumes")
        click.confirm(
            f"remove {', '.join(VOLUMES)} on {name} (stored metrics and dashboards are lost)?", abort=True
        )
    removed = do_down(ctx.app, name, purge_data, _progress(name, as_json))
    if as_json:
        emit_json({"server": name, "removed_volumes": removed})
        return
    kept = "removed the volumes " + ", ".join(removed) if removed else "volumes kept"
    click.echo(f"{name}: monitoring stopped and removed ({kept})")


@monitor.command("status")
@click.argument("name")
@json_option
@click.pass_obj
def status(ctx: Context, /, name: str, as_json: bool) -> None:
    """Each monitoring service's state and Prometheus' own view; exit 1 when something is down.

    A stack with no container at all (after `monitor down`, or never started) is "stopped": exit 0."""
    from ovpn.ops.monitor import BOT_NOT_CONFIGURED
    from ovpn.ops.monitor import status as do_status

    result = do_status(ctx.app, name)
    if as_json:
        emit_json(result.to_json())
    elif result.stopped:
        click.echo(
            f"{name}: monitoring stopped (no monitoring container; start it with `ovpn server monitor up {name}`)"
        )
    else:
        table(
            ["Service", "State", "Status", "Note"],
            _service_rows(result.services),
            title=f"{name}: monitoring",
        )
        if not result.bot_configured:
            click.echo(BOT_NOT_CONFIGURED)
        view = result.prometheus
        if view is not None:
            click.echo(
                f"prometheus: {view.count('up')} targets up, {view.count('down')} down, "
                f"{view.count('unknown')} not scraped yet; alerts firing: {', '.join(view.firing) or 'none'}"
            )
        elif result.prometheus_error:
            click.echo(f"prometheus: {result.prometheus_error}")
        for problem in result.problems:
            click.echo(f"DOWN {problem}")
    click.get_current_context().exit(0 if result.ok else 1)


@monitor.command("telegram-setup")
@click.argument("name")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the token BotFather gave you (it never appears on a command line).",
)
@click.option(
    "--owner-user-id", required=True, type=int, help="Your numeric Telegram user id: the bot obeys only you."
)
@click.option(
    "--notify-chat-ids", default="", help="More chats for notifications, comma-separated numeric ids."
)
@click.option(
    "--api-base-url", default="", help="A self-hosted Bot API server's root (default: Telegram's own)."
)
@pull_option
@click.option("--accept-new-host-key", is_flag=True, help="First contact: pin the host's SSH key.")
@json_option
@click.pass_obj
def telegram_setup(
    ctx: Context,
    /,
    name: str,
    token_file: Path,
    owner_user_id: int,
    notify_chat_ids: str,
    api_base_url: str,
    pull: str,
    accept_new_host_key: bool,
    as_json: bool,
) -> None:
    """Give NAME's Telegram bot its token and recipients, start it, and have it send a test message."""
    from ovpn.core.model import TelegramSettings
    from ovpn.ops.telegram_setup import parse_chat_ids, read_token, telegram_setup

    token = read_token(token_file)
    settings = TelegramSettings(owner_user_id, parse_chat_ids(notify_chat_ids), api_base_url.strip())
    result = telegram_setup(
        ctx.app,
        name,
        token,
        settings,
        pull,
        _progress(name, as_json),
        accept_new_host_key=accept_new_host_key,
    )
    if as_json:
        emit_json(result.to_json())
        return
    chats = ", ".join(map(str, result.notify_chat_ids)) or "none"
    click.echo(
        f"{name}: ovpn-telegram-bot runs (deploy {result.deploy_result}); test message delivered to owner "
        f"{result.owner_user_id} and notify chats: {chats}"
    )
