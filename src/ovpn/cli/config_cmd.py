"""`ovpn config render|validate`."""

from __future__ import annotations

from pathlib import Path

import click

from ovpn.cli.context import Context
from ovpn.cli.output import VALIDATOR_MARKS, emit_json, json_option, warn


@click.group()
def config() -> None:
    """Render and validate deploy bundles."""


@config.command("render")
@click.option("--server", "server_name", required=True)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Directory to write the bundle into."
)
@click.option(
    "--image", "images", multiple=True, metavar="SERVICE=IMAGE", help="Override an image for this render."
)
@json_option
@click.pass_obj
def render(ctx: Context, /, server_name: str, out: str, images: tuple[str, ...], as_json: bool) -> None:
    """Write the bundle exactly as it will sit under /opt/ovpn."""
    from ovpn.ops.files import write_bundle
    from ovpn.ops.render import render_server
    from ovpn.ops.servers import parse_images
    from ovpn.render.bundle import bundle_digest

    rendered = render_server(ctx.app, server_name, image_overrides=parse_images(images))
    write_bundle(rendered.bundle, Path(out))
    if as_json:
        emit_json(
            {
                "server": server_name,
                "out": out,
                "bundle_sha256": bundle_digest(rendered.bundle),
                "files": sorted(rendered.bundle),
                "warnings": rendered.warnings,
            }
        )
        return
    for message in rendered.warnings:
        warn(message)
    click.echo(f"wrote {len(rendered.bundle)} files for {server_name} to {out}")


@config.command("validate")
@click.option("--server", "server_name", required=True)
@json_option
@click.pass_obj
def validate(ctx: Context, /, server_name: str, as_json: bool) -> None:
    """Render into a temporary directory and run every installed validator on it."""
    from ovpn.ops.validate import validate_server

    checked = validate_server(ctx.app, server_name)
    failed = checked.failed
    if as_json:
        emit_json(
            {
                "server": server_name,
                "ok": not failed,
                "warnings": checked.warnings,
                "validators": [r.__dict__ for r in checked.results],
            }
        )
    else:
        for message in checked.warnings:
            warn(message)
        for r in checked.results:
            first, *rest = r.message.splitlines() or [""]
            click.echo(f"[{VALIDATOR_MARKS[r.status]}] {r.name:16} {first}")
            if r.status == "failed":
                for line in rest[:20]:
                    click.echo(f"       {line}")
        verdict = "invalid" if failed else "valid"
        click.echo(
            f"{server_name}: bundle {verdict} ({len(failed)} failed, "
            f"{sum(r.status == 'skipped' for r in checked.results)} skipped)"
        )
    if failed:
        click.get_current_context().exit(1)
