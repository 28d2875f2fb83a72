"""Printing: JSON for machines, tables and lines for people. Heavy imports stay inside functions."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from ovpn.cli.context import Context

F = TypeVar("F", bound=Callable[..., Any])

# How each validator verdict (ovpn.ops.validate.Status) is marked in `config validate` and `demo`.
VALIDATOR_MARKS = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "warning": "warn"}


def emit_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def record_json_mode(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """Remember `--json` on the shared Context, so that an error this command raises is printed as JSON too."""
    if value:
        context = ctx.find_object(Context)
        if context is not None:
            context.json_output = True
    return value


def json_flag(help: str) -> Callable[[F], F]:
    """The `--json` option of a command. Eager, so it is read before the other options are checked: an invalid
    value of another option is then reported as JSON as well."""
    return click.option(
        "--json", "as_json", is_flag=True, is_eager=True, callback=record_json_mode, help=help
    )


json_option = json_flag("Print JSON.")


def error_document(message: str, hint: str) -> dict[str, str]:
    """What a failed command prints on stdout under `--json` (the exit code is the same as in text mode)."""
    return {"error": message, "hint": hint}


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


def note(line: str) -> None:
    """A line on stderr, outside any --json document on stdout."""
    click.echo(line, err=True)
