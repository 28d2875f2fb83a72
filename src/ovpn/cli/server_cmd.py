"""`ovpn server ...`: server records and backend pools."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, json_option, table, warn
from ovpn.core.fields import CliOption
from ovpn.core.model import SERVER_FIELDS

if TYPE_CHECKING:
    from ovpn.core.model import Server


F = TypeVar("F", bound=Callable[..., Any])


def _option_settings(option: CliOption, command: Literal["add", "set"]) -> dict[str, Any]:
    """click's settings for a declared option, only those that differ from click's own defaults. `add` takes the
    declared help, requirement and default; `set` its own help and no default, so an option not given is None."""
    settings: dict[str, Any] = {"help": option.help if command == "add" else option.set_help}
    if option.integer:
        settings["type"] = int
    if option.repeatable:
        settings["multiple"] = True
    if option.metavar is not None:
        settings["metavar"] = option.metavar
    if command == "add" and option.required:
        settings["required"] = True
    if command == "add" and option.default is not None:
        settings.update(default=option.default, show_default=True)
    return settings


def server_field_options(command: Literal["add", "set"]) -> Callable[[F], F]:
    """One option per server field the command takes, in declaration order (ovpn.core.model.Server)."""

    def apply(function: F) -> F:
        for field in reversed(SERVER_FIELDS):  # click lists options in the reverse of decoration order
            option = field.option
            if option is not None and (command == "add" or option.settable):
                function = click.option(field.flag, field.name, **_option_settings(option, command))(function)
        return function

    return apply


def _public(server: Server, reveal: bool = False) -> dict[str, object]:
    """A server as JSON; its secrets (the REALITY private key, the relay UUID) only when asked for. Otherwise the
    relay identity shows as a fingerprint, which still tells whether two backends share one."""
    from ovpn.core.pool import relay_fingerprint

    doc: dict[str, object] = {
        "name": server.name,
        "role": server.role,
        "proxy_preset": server.proxy_preset,
        "host": server.host,
        "domain": server.domain,
        "port": server.port,
        "ssh_user": server.ssh_user,
        "ssh_port": server.ssh_port,
        "ssh_identity": server.ssh_identity,
        "xray_version": server.xray_version,
        "reality_public_key": server.reality_public_key,
        "reality_short_id": server.reality_short_id,
        "reality_server_name": server.reality_server_name,
        "reality_target": server.reality_target,
        "relay_identity": relay_fingerprint(server.relay_uuid),
        "images": dict(server.images),
        "agent_cert_file": server.agent_cert_file,
    }
    if reveal:
        doc["reality_private_key"] = server.reality_private_key
        doc["relay_uuid"] = server.relay_uuid
    return doc


@click.group()
def server() -> None:
    """Servers (vpn exits and proxy entry points) and their backend pools."""


@server.command("add")
@server_field_options("add")
@click.option(
    "--new-identity",
    is_flag=True,
    help="vpn: a REALITY identity of its own, not the vpn servers' shared one.",
)
@click.option("--identity-from", metavar="SERVER", help="vpn: join this vpn server's REALITY identity.")
@json_option
@click.pass_obj
def add(
    ctx: Context, /, as_json: bool, new_identity: bool, identity_from: str | None, **options: Any
) -> None:
    """Register a server in local state (touches no host). A vpn server joins the REALITY identity (key pair, short
    id, server name, target) that the vpn servers share, so that any of them can back a proxy's pool."""
    from ovpn.ops.servers import ServerSpec, add_server

    options["images"] = tuple(options["images"])
    added = add_server(ctx.app, ServerSpec(**options), new_identity=new_identity, identity_from=identity_from)
    created = added.server
    if as_json:
        emit_json({**_public(created), "identity_shared_with": added.shared_with})
        return
    click.echo(f"added {created.role} server {created.name}")
    click.echo(
        f"  REALITY identity:   {'shared with ' + added.shared_with if added.shared_with else 'its own'}"
    )
    if created.proxy_preset:
        click.echo(f"  proxy preset:      {created.proxy_preset}")
    click.echo(f"  REALITY public key: {created.reality_public_key}")
    click.echo(f"  REALITY short id:   {created.reality_short_id}")


@server.command("list")
@click.option("--reveal-secrets", is_flag=True, help="With --json: include private keys and relay UUIDs.")
@json_option
@click.pass_obj
def list_(ctx: Context, /, reveal_secrets: bool, as_json: bool) -> None:
    """List servers."""
    from ovpn.ops.server_views import server_listing

    listing = server_listing(ctx.app)
    if as_json:
        emit_json([_public(s, reveal_secrets) for s in listing.servers])
        return
    rows = [
        (
            s.name,
            s.role,
            s.proxy_preset or "",
            s.host,
            s.domain,
            s.port,
            ", ".join(listing.neighbours.get(s.name, [])),
            s.xray_version,
        )
        for s in listing.servers
    ]
    table(["Name", "Role", "Preset", "Host", "Domain", "Port", "Backends / proxies", "Xray"], rows)


@server.command("show")
@click.argument("name")
@click.option("--reveal-secrets", is_flag=True, help="Include the REALITY private key and the relay UUID.")
@json_option
@click.pass_obj
def show(ctx: Context, /, name: str, reveal_secrets: bool, as_json: bool) -> None:
    """Show one server."""
    from ovpn.ops.server_views import server_detail

    detail = server_detail(ctx.app, name)
    doc = _public(detail.server, reveal_secrets)
    doc["backends"] = (
        None
        if detail.backends is None
        else [{"name": a.backend, "priority": a.priority} for a in detail.backends]
    )
    doc["attached_to"] = detail.attached_to
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        if isinstance(value, list):
            value = ", ".join(v["name"] if isinstance(v, dict) else str(v) for v in value)
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key:22} {'' if value is None else value}")


@server.command("set")
@click.argument("name")
@server_field_options("set")
@click.option(
    "--identity-from",
    metavar="SERVER",
    help="vpn: take this vpn server's REALITY identity (key pair, short id, server name, target); shows whose "
    "links change and asks first.",
)
@click.option("--yes", "assume_yes", is_flag=True, help="With --identity-from: do not ask.")
@json_option
@click.pass_obj
def set_(
    ctx: Context, /, name: str, identity_from: str | None, assume_yes: bool, as_json: bool, **options: Any
) -> None:
    """Change fields of a server (deploy afterwards)."""
    from ovpn.errors import OvpnError
    from ovpn.ops.servers import IDENTITY_FIELDS, identity_change, set_server

    changes = {k: v for k, v in options.items() if v not in (None, ())}
    if identity_from is not None:
        if given := sorted(set(IDENTITY_FIELDS) & changes.keys()):
            raise OvpnError(
                f"--identity-from sets {', '.join(given)} itself",
                "give either --identity-from or the REALITY options",
            )
        change = identity_change(ctx.app, name, identity_from)
        shown = ", ".join(change.usernames[:20]) + (" ..." if len(change.usernames) > 20 else "")
        warn(f"{name} takes the REALITY identity of {identity_from}: the direct links of "
             f"{len(change.usernames)} users to {name} change{': ' + shown if shown else ''}")  # fmt: skip
        if not assume_yes:
            if as_json:
                raise OvpnError("--identity-from with --json needs --yes", "add --yes once you have checked")
            click.confirm(f"give {name} the identity of {identity_from}?", abort=True, err=True)
        changes.update(change.changes)
    if not changes:
        raise OvpnError("nothing to change", "pass at least one option, see `ovpn server set --help`")
    updated = set_server(ctx.app, name, changes)
    if as_json:
        emit_json(_public(updated))
        return
    click.echo(f"updated {name}: {', '.join(sorted(changes))}")
    if {"reality_private_key", "reality_short_id", "reality_server_name", "domain", "port"} & changes.keys():
        warn(
            f"links to {name} changed: after `ovpn deploy {name}`, hand out new ones with `ovpn user link --server "
            f"{name} --tag T --out DIR` (or --username U)"
        )


@server.command("remove")
@click.argument("name")
@click.pass_obj
def remove(ctx: Context, /, name: str) -> None:
    """Remove a server from local state (refused while it has attachments)."""
    from ovpn.ops.servers import remove_server

    remove_server(ctx.app, name)
    click.echo(f"removed {name}")


@server.group()
def backend() -> None:
    """Backend pools of proxy servers."""


@backend.command("attach")
@click.option("--proxy", "proxy_name", required=True)
@click.option("--backend", "backend_name", required=True)
@click.option(
    "--priority",
    type=int,
    default=100,
    show_default=True,
    help="0 to 1000000; lower is preferred, the rest are backups.",
)
@json_option
@click.pass_obj
def attach(ctx: Context, /, proxy_name: str, backend_name: str, priority: int, as_json: bool) -> None:
    """Attach a vpn server to a proxy's pool (provisions the relay identity once)."""
    from ovpn.ops.pools import attach as do_attach

    result = do_attach(ctx.app, proxy_name, backend_name, priority)
    if as_json:
        emit_json(
            {
                "proxy": proxy_name,
                "backend": backend_name,
                "priority": priority,
                "changed": result.changed,
                "provisioned_relay_identity": result.provisioned_identity,
            }
        )
        return
    if not result.changed:
        click.echo(f"{backend_name} is already attached to {proxy_name} with priority {priority}")
        return
    click.echo(f"attached {backend_name} to {proxy_name} (priority {priority})")
    if result.provisioned_identity:
        click.echo(f"provisioned the relay identity proxy-service@cluster on {backend_name}")
    click.echo(f"next: ovpn deploy {backend_name}, then ovpn deploy {proxy_name}")


@backend.command("detach")
@click.option("--proxy", "proxy_name", required=True)
@click.option("--backend", "backend_name", required=True)
@click.pass_obj
def detach(ctx: Context, /, proxy_name: str, backend_name: str) -> None:
    """Detach a backend from a proxy's pool."""
    from ovpn.ops.pools import detach as do_detach

    do_detach(ctx.app, proxy_name, backend_name)
    click.echo(f"detached {backend_name} from {proxy_name}; next: ovpn deploy {proxy_name}")


@backend.command("list")
@click.option("--proxy", "proxy_name", required=True)
@json_option
@click.pass_obj
def list_backends(ctx: Context, /, proxy_name: str, as_json: bool) -> None:
    """List a proxy's backends in priority order."""
    from ovpn.ops.pools import attachments

    found = attachments(ctx.app, proxy_name)
    if as_json:
        emit_json([{"backend": a.backend, "priority": a.priority} for a in found])
        return
    if not found:
        click.echo(f"{proxy_name} has no backend attached (its foreign traffic fails closed)")
        return
    best = found[0].priority
    table(
        ["Backend", "Priority", "Role in pool"],
        [(a.backend, a.priority, "active" if a.priority == best else "backup") for a in found],
    )
