"""The server field declarations (ovpn.core.model.Server) drive the repository and the CLI: every field is declared,
stored and read back whole, sealed where it is secret, and offered by `server add` / `server set` as declared."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovpn.cli.main import cli
from ovpn.core.fields import FieldDeclaration, Stored, declarations
from ovpn.core.model import ROLES, SERVER_FIELDS, Server
from ovpn.ops.app import App
from ovpn.ops.servers import ServerSpec
from ovpn.state.db import DB_FILE, Database
from ovpn.state.secrets import PREFIX

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
VALUES: dict[Stored, st.SearchStrategy[Any]] = {
    "text": text,
    "optional_text": st.none() | text,
    "port": st.integers(1, 65535),
    "role": st.sampled_from(ROLES),
    "flag": st.booleans(),
    "string_map": st.dictionaries(text, text, max_size=3).map(lambda m: tuple(sorted(m.items()))),
}


def servers(name: st.SearchStrategy[str]) -> st.SearchStrategy[Server]:
    """Any Server the schema takes, every field drawn by how its column holds it (so a new field is covered here
    unasked). The schema's one rule across columns: a proxy has a preset, a vpn server none."""
    fields = {f.name: VALUES[f.stored] for f in SERVER_FIELDS}
    return st.builds(Server, **{**fields, "name": name}).filter(
        lambda s: (s.role == "proxy") == (s.proxy_preset is not None)
    )


def subcommand(name: str) -> click.Command:
    group = cli.commands["server"]
    assert isinstance(group, click.Group)
    return group.commands[name]


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name is not None}


def test_every_server_field_has_a_declaration_and_an_undeclared_field_is_refused() -> None:
    assert [d.name for d in SERVER_FIELDS] == [f.name for f in dataclasses.fields(Server)]

    @dataclasses.dataclass
    class Undeclared:
        value: int

    with pytest.raises(TypeError, match=r"Undeclared\.value has no field declaration"):
        declarations(Undeclared)


def test_the_servers_table_has_a_column_for_every_declared_field(tmp_path: Path) -> None:
    db = Database(tmp_path)
    columns = {r[1] for r in db.conn.execute("SELECT * FROM pragma_table_info('servers')")}
    db.close()
    assert {d.name for d in SERVER_FIELDS} <= columns


@settings(max_examples=40, deadline=None)
@given(first=servers(st.just("a")), second=servers(st.just("a")), other=servers(st.just("b")))
def test_the_repository_stores_every_field_and_reads_it_back(
    first: Server, second: Server, other: Server
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = App(Path(folder), env={})
        with app.writing() as repo:
            repo.add_server(first)
            repo.add_server(other)
        with app.reading() as repo:
            assert repo.server("a") == first
            assert repo.servers() == [first, other]
        with app.writing() as repo:
            repo.update_server(second)
        with app.reading() as repo:
            assert repo.servers() == [second, other]
        db = Database(Path(folder))
        row = db.conn.execute("SELECT * FROM servers WHERE name = 'a'").fetchone()
        db.close()
    assert {d.name: _sealed(row[d.name]) for d in SERVER_FIELDS} == {d.name: d.secret for d in SERVER_FIELDS}


def _sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def test_a_secret_field_never_reaches_the_database_file_in_clear(tmp_path: Path) -> None:
    secret = [d for d in SERVER_FIELDS if d.secret]
    assert secret
    plain: dict[Stored, Any] = {
        "text": "t",
        "optional_text": None,
        "port": 1,
        "role": "vpn",
        "flag": True,
        "string_map": (),
    }
    values: dict[str, Any] = {
        d.name: f"clear-{d.name}-value" if d.secret else plain[d.stored] for d in SERVER_FIELDS
    }
    server = Server(**values)
    app = App(tmp_path, env={})
    with app.writing() as repo:
        repo.add_server(server)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob(f"{DB_FILE}*"))
    assert all(f"clear-{d.name}-value".encode() not in raw for d in secret)


def _entered(declared: FieldDeclaration) -> bool:
    return declared.option is not None


# Options that are not server fields: the output mode, and which REALITY identity a vpn server takes.
NOT_FIELDS = {"as_json", "new_identity", "identity_from", "assume_yes"}


def test_server_add_offers_each_entered_field_as_declared() -> None:
    options = options_of(subcommand("add"))
    entered = [d for d in SERVER_FIELDS if _entered(d)]
    assert [name for name in options if name not in NOT_FIELDS] == [d.name for d in entered]
    for declared in entered:
        assert declared.option is not None
        option = options[declared.name]
        assert option.opts == [declared.flag]
        assert option.help == declared.option.help
        assert option.required == declared.option.required
        assert option.multiple == declared.option.repeatable
        if declared.option.default is not None:
            assert (option.default, option.show_default) == (declared.option.default, True)
        assert isinstance(option.type, click.types.IntParamType) == declared.option.integer


def test_server_add_options_are_what_a_server_spec_takes() -> None:
    assert {name for name in options_of(subcommand("add")) if name not in NOT_FIELDS} == {
        f.name for f in dataclasses.fields(ServerSpec)
    }


def test_server_set_offers_each_settable_field_and_nothing_else() -> None:
    options = options_of(subcommand("set"))
    settable = [d for d in SERVER_FIELDS if d.option is not None and d.option.settable]
    assert {"name", "role"}.isdisjoint(options)
    assert [name for name in options if name not in NOT_FIELDS] == [d.name for d in settable]
    for declared in settable:
        assert declared.option is not None
        option = options[declared.name]
        assert option.opts == [declared.flag]
        assert option.help == declared.option.set_help
        assert not option.required
        assert not option.show_default
