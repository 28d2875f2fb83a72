"""The `ovpn` command: global options, error handling and the command groups."""

from __future__ import annotations

import sys
from typing import ClassVar, NoReturn

import click

from ovpn import __version__
from ovpn.cli import (
    ansible_cmd,
    backup_cmd,
    config_cmd,
    demo_cmd,
    fleet_cmd,
    images_cmd,
    monitor_cmd,
    route_cmd,
    server_cmd,
    stats_cmd,
    user_cmd,
)
from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, error_document
from ovpn.errors import Interrupted, OvpnError


class Commands(click.Group):
    """Commands that read as a subcommand of another that takes a name: `ovpn deploy history NAME` lists, while
    `ovpn deploy NAME` deploys."""

    beside: ClassVar[dict[tuple[str, str], click.Command]] = {("deploy", "history"): fleet_cmd.deploy_history}

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        command = self.beside.get((args[0], args[1])) if len(args) > 2 else None
        if command is not None:
            return " ".join(args[:2]), command, args[2:]
        return super().resolve_command(ctx, args)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="State directory (default: $OVPN_DATA_DIR or ~/.ovpn).",
)
@click.version_option(__version__, prog_name="ovpn")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """Control plane for Xray VLESS + REALITY servers and the HA proxy topology."""
    ctx.ensure_object(Context).data_dir = data_dir


@cli.command()
def version() -> None:
    """Print the ovpn version."""
    click.echo(__version__)


cli.add_command(server_cmd.server)
cli.add_command(user_cmd.user)
cli.add_command(config_cmd.config)
cli.add_command(route_cmd.route)
cli.add_command(demo_cmd.demo)
cli.add_command(ansible_cmd.ansible)
cli.add_command(fleet_cmd.deploy)
cli.add_command(fleet_cmd.restart)
cli.add_command(fleet_cmd.rollback)
cli.add_command(fleet_cmd.doctor)
cli.add_command(stats_cmd.stats)
for command in (fleet_cmd.init, fleet_cmd.status, fleet_cmd.logs, backup_cmd.backup, backup_cmd.restore):
    server_cmd.server.add_command(command)
server_cmd.server.add_command(monitor_cmd.monitor)
server_cmd.server.add_command(images_cmd.images)


def _fail(context: Context, message: str, hint: str, code: int) -> NoReturn:
    """One failure, as `error:` and `hint:` lines on stderr, or under `--json` as one JSON document on stdout."""
    if context.json_output:
        emit_json(error_document(message, hint))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


def _stopped(context: Context, word: str) -> NoReturn:
    """Ctrl-C, or a confirmation answered no: exit 130."""
    if context.json_output:
        emit_json(error_document(word, ""))
    else:
        click.echo(word, err=True)
    sys.exit(130)


def main() -> None:
    context = Context()
    try:
        _run(context)
    finally:
        context.close()


def _run(context: Context) -> NoReturn:
    try:
        code = cli.main(prog_name="ovpn", standalone_mode=False, obj=context)
    except Interrupted as e:
        _fail(context, e.message, e.hint, 130)
    except OvpnError as e:
        _fail(context, e.message, e.hint, 1)
    except click.exceptions.Abort:
        _stopped(context, "aborted")
    except click.ClickException as e:
        if context.json_output:
            where = e.ctx.command_path if isinstance(e, click.UsageError) and e.ctx is not None else ""
            _fail(context, e.format_message(), f"see `{where} --help`" if where else "", e.exit_code)
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _stopped(context, "interrupted")
    sys.exit(code if isinstance(code, int) else 0)
