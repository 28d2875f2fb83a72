"""`ovpn demo`: the seed's topology in a scratch directory, end to end on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ovpn.cli.output import VALIDATOR_MARKS, emit_json, json_option, warn


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="New data directory for the demo (default: a fresh temporary one).",
)
@json_option
@click.pass_context
def demo(ctx: click.Context, directory: str | None, as_json: bool) -> None:
    """Build a proxy, two backends and a user; render and validate every bundle; print the proxy link."""
    from ovpn.ops.demo import run_demo
    from ovpn.ops.links import qr_terminal

    data_dir = Path(directory).absolute() if directory else Path(tempfile.mkdtemp(prefix="ovpn-demo-"))
    report = run_demo(data_dir, progress=(lambda m: None) if as_json else (lambda m: click.echo(f"==> {m}")))
    failed = [r for results in report.validation.values() for r in results if r.status == "failed"]
    if as_json:
        emit_json(
            {
                "data_dir": str(report.data_dir),
                "bundles": {k: str(v) for k, v in report.bundles.items()},
                "validation": {k: [r.__dict__ for r in v] for k, v in report.validation.items()},
                "routes": [r.__dict__ for r in report.routes],
                "link": report.link,
                "ok": not failed,
            }
        )
    else:
        for name, results in report.validation.items():
            click.echo(f"\n{name}: bundle in {report.bundles[name]}")
            for message in report.warnings[name]:
                warn(message)
            for r in results:
                click.echo(
                    f"  [{VALIDATOR_MARKS[r.status]}] {r.name:16} {(r.message.splitlines() or [''])[0]}"
                )
        click.echo("\nHow proxy-ru routes (same rules and geodata it ships):")
        for explained in report.routes:
            click.echo(f"  {explained.destination:14} -> {explained.outbound:13} {explained.rule or ''}")
        click.echo(f"\nalice's link to the proxy:\n{report.link}\n")
        click.echo(qr_terminal(report.link), nl=False)
        click.echo(f"\nState: {report.data_dir} (try: ./ovpn --data-dir {report.data_dir} server list)")
    if failed:
        ctx.exit(1)
