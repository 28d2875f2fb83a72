"""The `ovpn` command: global options, error handling and the command groups."""

from __future__ import annotations

import sys

import click

from ovpn import __version__
from ovpn.cli import (
    ansible_cmd,
    config_cmd,
    demo_cmd,
    fleet_cmd,
    monitor_cmd,
    route_cmd,
    server_cmd,
    stats_cmd,
    user_cmd,
)
from ovpn.cli.context import Context
from ovpn.errors import OvpnError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="State directory (default: $OVPN_DATA_DIR or ~/.ovpn).",
)
@click.version_option(__version__, prog_name="ovpn")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None) -> None:
    """Control plane for Xray VLESS + REALITY servers and the HA proxy topology."""
    ctx.obj = Context(data_dir)


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
cli.add_command(fleet_cmd.doctor)
cli.add_command(stats_cmd.stats)
for command in (fleet_cmd.init, fleet_cmd.status, fleet_cmd.logs, fleet_cmd.backup, fleet_cmd.restore):
    server_cmd.server.add_command(command)
server_cmd.server.add_command(monitor_cmd.monitor)


def main() -> None:
    try:
        code = cli.main(prog_name="ovpn", standalone_mode=False)
    except OvpnError as e:
        click.secho(f"error: {e.message}", fg="red", err=True)
        if e.hint:
            click.echo(f"hint: {e.hint}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
