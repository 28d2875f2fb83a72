"""One declaration per record field: how it is stored and how an operator gives it on the command line.

A field declares itself in its dataclass's metadata (`declare`). The repository derives its columns and row
mapping from the declarations and the CLI derives its options from them, so a new field is written once (plus
its migration, and its rule where the ops layer checks input). Plain data: state/ and cli/ interpret it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# How a column holds its value. text / optional_text: TEXT (NULL for None); port: an INTEGER from 1 to 65535;
# role: 'vpn' or 'proxy'; flag: 0 or 1; string_map: a JSON object of strings, read back as sorted pairs.
Stored = Literal["text", "optional_text", "port", "role", "flag", "string_map"]

_KEY = "ovpn.field"


@dataclass(frozen=True)
class CliOption:
    """A command-line option for the field. `help`, `required` and `default` are those of the command that
    creates the record; `settable` says whether the command that changes it offers the option (with `set_help`).
    `flag` defaults to the field name with dashes; `repeatable` options collect a tuple of strings."""

    help: str | None = None
    required: bool = False
    default: str | int | None = None
    integer: bool = False
    flag: str | None = None
    metavar: str | None = None
    repeatable: bool = False
    settable: bool = True
    set_help: str | None = None


@dataclass(frozen=True)
class FieldDeclaration:
    """A field's column (named as the field), how the column holds it, whether it is sealed at rest (an encrypted
    secret), and its command-line option (None: never given on the command line)."""

    name: str
    stored: Stored
    secret: bool
    option: CliOption | None

    @property
    def flag(self) -> str:
        """The option's flag, for a field that has an option."""
        declared = self.option.flag if self.option is not None else None
        return declared or "--" + self.name.replace("_", "-")


def declare(stored: Stored, option: CliOption | None = None, *, secret: bool = False) -> Mapping[str, object]:
    """The metadata of a declared dataclass field: `field(metadata=declare(...))`; `declarations` names it."""
    return {_KEY: FieldDeclaration("", stored, secret, option)}


def declarations(record: type) -> tuple[FieldDeclaration, ...]:
    """The declarations of a dataclass's fields, in field order; a field without one is a programming error."""
    found: list[FieldDeclaration] = []
    for field in dataclasses.fields(record):
        if _KEY not in field.metadata:
            raise TypeError(f"{record.__name__}.{field.name} has no field declaration")
        found.append(dataclasses.replace(field.metadata[_KEY], name=field.name))
    return tuple(found)
