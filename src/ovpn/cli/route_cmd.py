"""`ovpn route explain`."""

from __future__ import annotations

import click

from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, json_option


@click.group()
def route() -> None:
    """How a proxy routes destinations."""


@route.command("explain")
@click.option("--server", "server_name", required=True, help="A proxy server.")
@click.argument("destination")
@click.option(
    "--sni",
    metavar="NAME",
    help="The name the client sends in its TLS SNI or HTTP Host (a tun-mode client connecting to an address).",
)
@json_option
@click.pass_obj
def explain(ctx: Context, /, server_name: str, destination: str, sni: str | None, as_json: bool) -> None:
    """Say whether DESTINATION (domain or IP) exits directly or goes to the foreign pool, and why."""
    from ovpn.ops.route import explain as do_explain

    result = do_explain(ctx.app, server_name, destination, sni)
    if as_json:
        emit_json(result.__dict__)
        return
    click.echo(f"{result.destination}: {result.outbound}")
    if result.sni is not None and not result.sni_routed:
        click.echo(
            f"  sni:     {result.sni} (not used: the proxy decides by the destination, never by a sniffed name)"
        )
    elif result.sni is not None:
        click.echo(f"  sni:     {result.sni} (the proxy's domain rules match this name)")
    if result.matcher:
        click.echo(f"  rule:    {result.rule} (matched {result.matcher})")
    else:
        click.echo("  rule:    no preset rule matched, so it is treated as foreign")
    click.echo(f"  meaning: {result.meaning}")
