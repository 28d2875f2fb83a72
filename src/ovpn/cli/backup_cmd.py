"""`ovpn server backup ...` and `ovpn server restore`: archives on the host, the operator's copies, restores."""

from __future__ import annotations

import dataclasses

import click

from ovpn.cli.context import Context
from ovpn.cli.fleet_cmd import _progress
from ovpn.cli.output import emit_json, json_option, table

TAKE = "take"


class _TakeByDefault(click.Group):
    """`server backup NAME ...` is short for `server backup take NAME ...`; `list` and `download` are named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [TAKE, *args]
        return super().parse_args(ctx, args)


@click.group("backup", cls=_TakeByDefault)
def backup() -> None:
    """Back up a server (`server backup NAME`), list its archives, or download one.

    `server backup NAME` is short for `server backup take NAME` (spell `take` out for a server named `list`,
    `download` or `take`)."""


@backup.command(TAKE)
@click.argument("name")
@click.option("--keep", type=int, default=7, show_default=True, help="How many archives to keep on the host.")
@click.option(
    "--download",
    metavar="DIR",
    help="Also copy the archive into this local folder, verified against its digest, with a .sha256 beside it.",
)
@json_option
@click.pass_obj
def take(ctx: Context, /, name: str, keep: int, download: str | None, as_json: bool) -> None:
    """Archive the live release and the agent's data on the host (checksummed)."""
    from ovpn.ops.backup import backup as do_backup

    result = do_backup(ctx.app, name, keep, _progress(name, as_json), download)
    if as_json:
        emit_json(dataclasses.asdict(result))
        return
    click.echo(
        f"{name}: {result.remote_path} ({result.size_bytes // 1024} KiB, sha256 {result.sha256[:16]}...)"
    )
    if result.local_copy is not None:
        click.echo(f"{name}: verified copy {result.local_copy}")


_RECORD_MARKS = {"matches": "matches", "differs": "DIFFERS", "none": "none"}


@backup.command("list")
@click.argument("name")
@json_option
@click.pass_obj
def list_(ctx: Context, /, name: str, as_json: bool) -> None:
    """The archives on the host, newest first, and whether each matches the digest this state recorded."""
    from ovpn.core.names import BACKUP_DIR
    from ovpn.ops.backup import list_backups

    found = list_backups(ctx.app, name)
    if as_json:
        emit_json({"server": name, "archives": [dataclasses.asdict(a) for a in found]})
    elif not found:
        click.echo(f"{name}: no archives in {BACKUP_DIR}")
    else:
        rows = [(a.name, f"{a.size_bytes // 1024} KiB", a.modified_at, f"{a.sha256[:16]}...",
                 _RECORD_MARKS[a.record]) for a in found]  # fmt: skip
        table(["archive", "size", "modified", "sha256", "recorded here"], rows, title=f"{name}: {BACKUP_DIR}")


@backup.command("download")
@click.argument("name")
@click.argument("archive")
@click.option("--to", "to", metavar="DIR", required=True, help="The local folder to write the copy into.")
@json_option
@click.pass_obj
def download(ctx: Context, /, name: str, archive: str, to: str, as_json: bool) -> None:
    """Copy an archive this state recorded from the host, verified, with a .sha256 beside it."""
    from ovpn.ops.backup import download as do_download

    path = do_download(ctx.app, name, archive, to, _progress(name, as_json))
    if as_json:
        emit_json({"server": name, "archive": archive, "local_copy": str(path)})
    else:
        click.echo(f"{name}: verified copy {path}")


@click.command("restore")
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    help="An archive on the host (its name, as `server backup list` shows it) or a local file (its path).",
)
@click.option(
    "--digest",
    metavar="SHA256",
    help="For an archive this state has no record of: its SHA-256, as kept when it was taken.",
)
@click.option(
    "--trust-host-digest",
    is_flag=True,
    help="For an archive on the host this state has no record of: accept the .sha256 file beside it there.",
)
@click.pass_obj
def restore(ctx: Context, /, name: str, source: str, digest: str | None, trust_host_digest: bool) -> None:
    """Restore a backup as the live release, with the deploy health gate and rollback.

    The archive must match the digest recorded in the local state when it was taken (or, for a local file, the
    .sha256 beside it), name this server in its manifest, and hold only files, directories and links that stay
    inside it. A local file is checked here, then uploaded to /opt/ovpn-backups and checked again there."""
    from ovpn.ops.restore import restore as do_restore

    revision = do_restore(ctx.app, name, source, _progress(name, False), digest=digest,
                          trust_host_digest=trust_host_digest)  # fmt: skip
    click.echo(f"{name}: restored {source} as {revision}")
