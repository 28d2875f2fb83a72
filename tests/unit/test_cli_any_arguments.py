"""Every command with any arguments: never a traceback, and a refused command leaves the state as it was.

The command tree is walked from the real click group, so a new command or option is fuzzed without editing this
file. Values mix the seed's real names with hostile ones (huge and non-finite numbers, shell syntax, case twins of
existing identities, bad paths). Commands that reach hosts run against an `ssh` on PATH that fails like an
unreachable host: nothing leaves this machine, and their argument checks and error paths are still exercised.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.cli import run_cli, seed_state

from ovpn.cli.main import cli

# `demo` builds a whole scratch fleet of its own in a new folder; its arguments are a folder and a flag.
SKIPPED = {("demo",)}

CACHES = ("cache", "geodata")
NAMES = ["proxy-ru", "proxy-2", "vpn-nl", "vpn-de", "vpn-odd", "alice", "Alice", "pilot", "xray", "haproxy"]
HOSTILE = [
    "",
    " ",
    "-",
    "--json",
    "ALICE",
    "alice@global",
    "ALICE@GLOBAL",
    "proxy-service@cluster",
    "PROXY-SERVICE@CLUSTER",
    "$(id)",
    "a;b",
    "a b",
    "`x`",
    "'",
    '"',
    "../../etc/passwd",
    "é",
    "xn--",
    "a" * 300,
    "0x7f.1",
    "127.1",
    "2130706433",
    "1.2.3",
    "999.1.1.1",
    "1.2.3.4",
    "::1",
    "www.gosuslugi.ru",
    "2026-02-30",
    "1999-01-01",
    "2099-12-31",
    "xray=evil image",
    "xray=ok:1",
    "=",
    "1e30",
    "inf",
    "nan",
    "-1",
    "0",
    "65536",
]
NUMBERS = ["0", "1", "-1", "100", "65535", "65536", "99999999999999999999999", "1e30", "1e300", "inf", "-inf", "nan",
           "1e-12", "0.5", "abc", ""]  # fmt: skip

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=24)


def leaf_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, (*path, name))
        elif path not in SKIPPED:
            found.append((path, command))

    walk(cli, ())
    return found


COMMANDS = leaf_commands()


def value_for(param: click.Parameter, scratch: Path) -> st.SearchStrategy[str]:
    kind = param.type
    if isinstance(kind, click.Choice):
        return st.sampled_from([*map(str, kind.choices), "bogus"])
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return st.one_of(st.sampled_from(NUMBERS), st.integers().map(str), st.floats().map(str))
    if isinstance(kind, click.Path):
        paths = [scratch / "new", scratch / "a-file", scratch / "a-file" / "below", scratch / "full",
                 Path("/proc/ovpn-no-such"), Path("/nonexistent/deep/path")]  # fmt: skip
        return st.sampled_from([str(p) for p in paths])
    return st.one_of(st.sampled_from(NAMES + HOSTILE), text)


@st.composite
def invocations(draw: st.DrawFn, scratch: Path) -> list[str]:
    path, command = draw(st.sampled_from(COMMANDS))
    argv = list(path)
    for param in command.params:
        if not (param.required or draw(st.booleans())):
            continue
        if isinstance(param, click.Option) and param.is_flag:
            argv.append(param.opts[0])
            continue
        value = draw(value_for(param, scratch))
        if isinstance(param, click.Option):
            argv += [param.opts[0], value]
        else:
            argv.append(value if not value.startswith("-") else f"x{value}")
    return argv


def snapshot(data_dir: Path) -> dict[str, bytes]:
    """The state as data: the SQL dump of ovpn.db (schema, rows, user_version) and the bytes of every other non-empty
    file (an SSH attempt creates an empty known_hosts with the right mode), except the caches that any command may
    fill (downloaded wheels and geodata, rebuilt when missing)."""
    files: dict[str, bytes] = {}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        if (
            path.is_file()
            and path.stat().st_size
            and not path.name.startswith("ovpn.db")
            and rel.parts[0] not in CACHES
        ):
            files[str(rel)] = path.read_bytes()
    conn = sqlite3.connect(f"file:{data_dir / 'ovpn.db'}?mode=ro", uri=True)
    try:
        dump = (
            "\n".join(conn.iterdump()) + f"\nuser_version={conn.execute('PRAGMA user_version').fetchone()[0]}"
        )
    finally:
        conn.close()
    files["ovpn.db (dump)"] = dump.encode()
    return files


def failing_ssh(bin_dir: Path) -> None:
    """An `ssh` that answers like an unreachable host (exit 255), so host-bound commands never touch a network."""
    bin_dir.mkdir()
    stub = bin_dir / "ssh"
    stub.write_text("#!/bin/sh\necho 'ssh: connect to host test port 22: Connection refused' >&2\nexit 255\n")
    stub.chmod(0o755)


@pytest.fixture
def pristine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Path]:
    seed_state(tmp_path, monkeypatch, capsys)
    failing_ssh(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OVPN_LOCK_TIMEOUT", "2")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a-file").write_text("not a folder\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # CI has no stdin: a confirmation prompt reads EOF
    monkeypatch.chdir(scratch)  # a relative path any command writes lands here
    yield tmp_path


# 100 invocations by default (a quick `pytest tests/unit`); ./scripts/test, which CI runs, asks for 250.
@settings(max_examples=int(os.environ.get("OVPN_CLI_FUZZ_EXAMPLES", "100")),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_no_traceback_and_a_refusal_changes_nothing(
    pristine: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    state = pristine / "work-state"
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(pristine / "state", state)
    monkeypatch.setenv("OVPN_DATA_DIR", str(state))
    argv = data.draw(invocations(pristine / "scratch"))
    before = snapshot(state)
    # run_cli fails the test on any exception other than SystemExit: that is the traceback the operator would see.
    code, out, err = run_cli(capsys, *argv)
    assert "Traceback" not in err + out, (argv, err)
    if code != 0:
        assert err.strip() or (out.strip() and "--json" in argv), (argv, "a refusal must say why")
        assert snapshot(state) == before, (argv, err)
