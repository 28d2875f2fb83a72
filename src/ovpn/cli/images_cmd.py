"""`ovpn server images list|copy`: a server's images on its host, and copying them from another host."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ovpn.cli.context import Context
from ovpn.cli.fleet_cmd import _progress
from ovpn.cli.output import emit_json, json_option, table

if TYPE_CHECKING:
    from ovpn.facts.images import HostImage
    from ovpn.ops.images import Wanted

accept_new_host_key_option = click.option(
    "--accept-new-host-key", is_flag=True, help="First contact: pin the hosts' SSH keys."
)


@click.group()
def images() -> None:
    """The container images a server's bundle needs, and copying them between hosts."""


@images.command("list")
@click.argument("name")
@accept_new_host_key_option
@json_option
@click.pass_obj
def list_(ctx: Context, /, name: str, accept_new_host_key: bool, as_json: bool) -> None:
    """Each image the server's bundle pins (runtime and monitoring) and whether its host has it. Missing images
    are a state, not an error: exit 0."""
    from ovpn.ops.images import list_images

    rows = list_images(ctx.app, name, accept_new_host_key=accept_new_host_key)
    if as_json:
        emit_json({"server": name, "images": [row.to_json() for row in rows]})
        return
    table(
        ["Service", "Part", "Image", "On the host", "Size (MiB)", "Note"],
        [_row(r.wanted, r.found) for r in rows],
        title=f"{name}: images",
    )


def _row(wanted: Wanted, found: HostImage | None) -> tuple[str, ...]:
    from ovpn.ops.images import mib

    state = f"present {found.short_id}" if found else "not built yet" if wanted.built_on_host else "missing"
    return (wanted.service, wanted.part, wanted.ref, state, mib(found.size) if found else "", wanted.note)


@images.command("copy")
@click.option("--from", "source", required=True, metavar="SERVER", help="The host that has the images.")
@click.option(
    "--to", "target", required=True, metavar="SERVER", help="The host that lacks them (locked meanwhile)."
)
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="SERVICE",
    help="Copy this service's image (repeatable; default: the monitoring services').",
)
@click.option(
    "--plan", "plan_only", is_flag=True, help="List what would be copied, with sizes; touch nothing."
)
@accept_new_host_key_option
@json_option
@click.pass_obj
def copy(
    ctx: Context,
    /,
    source: str,
    target: str,
    services: tuple[str, ...],
    plan_only: bool,
    accept_new_host_key: bool,
    as_json: bool,
) -> None:
    """Copy the images the target's bundle needs and the target lacks from another host: `docker save` there is
    streamed through this machine into `docker load` on the target, and each image id is checked afterwards."""
    from ovpn.ops.images import copy_images, mib

    outcome = copy_images(ctx.app, source, target, services, plan_only=plan_only,
                          progress=_progress(target, as_json), accept_new_host_key=accept_new_host_key)  # fmt: skip
    if as_json:
        emit_json(outcome.to_json())
        return
    if plan_only or not outcome.copied:
        click.echo("\n".join(outcome.plan.lines()))
        return
    count = len(outcome.copied)
    seconds = sum(c.seconds for c in outcome.copied)
    click.echo(
        f"copied {count} image{'s' if count > 1 else ''} ({mib(sum(c.bytes for c in outcome.copied))} MiB) from "
        f"{source} to {target} in {seconds:.1f} s; every image id matches {source}'s"
    )
