"""Printing: JSON for machines, tables and lines for people. Heavy imports stay inside functions."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

# How each validator verdict (ovpn.ops.validate.Status) is marked in `config validate` and `demo`.
VALIDATOR_MARKS = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "warning": "warn"}


def emit_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for header in headers:
        t.add_column(header, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)
    console.print(t)


def warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)
