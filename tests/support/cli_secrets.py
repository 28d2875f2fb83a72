"""The table behind "no command prints a secret unless asked": a row of arguments for every command of the tree,
a seeded fleet to run them on, and the search of their output (tests/unit/test_cli_secrets_in_output.py)."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import click
import pytest

from ovpn.cli.main import Commands, cli
from ovpn.core.model import TelegramSettings
from ovpn.ops.app import App
from ovpn.state.db import DB_FILE
from ovpn.state.secrets import KEY_FILE
from tests.support.cli import run_cli, seed_state
from tests.support.topology import XRAY_KEY_PAIRS

LO = "vpn-lo"  # a server on a closed loopback port: host-bound commands fail to connect
BOT_TOKEN = "123456789:AAH-not-a-real-bot-token-0123456789ab"

# Arguments per command (after its path), run in this order. Placeholders: {out} a new folder per run, {token} a
# file holding BOT_TOKEN. Commands marked HOST need a host: they are expected to fail (exit non-zero). Those
# marked REVEAL are asked for secrets: they must print them (and are not searched).
HOST = "host"
REVEAL = "reveal"
RUNS: dict[tuple[str, ...], tuple[str, list[str]]] = {}
# Commands that run the external validators (xray -test, haproxy -c, promtool, amtool, docker compose): their rows
# run in tests/integration/test_cli_secrets_with_validators.py, the others in tests/unit.
VALIDATING = {("config", "validate"), ("demo",)}


def row(path: str, *argvs: str, kind: str = "local") -> None:
    for argv in argvs:
        RUNS[(*path.split(), argv)] = (kind, argv.split())


row("version", "")
row(
    "server add",
    "--name vpn-x --role vpn --host 203.0.113.40",
    "--name vpn-y --role vpn --host 203.0.113.41 --json",
)
row("server list", "", "--json")
row("server show", "proxy-ru", "vpn-nl", "vpn-nl --json", "proxy-ru --json")
row("server show", "vpn-nl --reveal-secrets", kind=REVEAL)
row("server list", "--json --reveal-secrets", kind=REVEAL)
row("server set", "vpn-x --reality-short-id abcd",
    f"vpn-x --reality-private-key {XRAY_KEY_PAIRS['other'][0]} --json")  # fmt: skip
row("server remove", "vpn-y")
row("server backend attach", "--proxy proxy-2 --backend vpn-odd --json")
row("server backend list", "--proxy proxy-ru", "--proxy proxy-ru --json", "--proxy proxy-2")
row("server backend detach", "--proxy proxy-2 --backend vpn-odd")
row("user add", "--username bob --json", "--username carl")
row("user enable", "--username bob", "--username bob --json")
row("user disable", "--username bob", "--username bob --json")
row("user expiry-set", "--username bob --date 2099-01-01", "--username bob --date 2099-01-02 --json")
row("user expiry-clear", "--username bob", "--username bob --json")
row("user quota-set", "--username bob --gb 10", "--username bob --gb 11 --json")
row("user quota-reset", "--username bob", "--username bob --json")
row("user list", "", "--json", "--tag pilot")
row("user show", "--username alice", "--username alice --json")
row("user link", "--server proxy-ru --username alice --no-qr", "--server vpn-nl --username alice --format xray-json",
    "--server proxy-ru --tag pilot --out {out}")  # fmt: skip
row("user rm", "--username carl")
row("config render", "--server proxy-ru --out {out}", "--server vpn-nl --out {out} --json")
row("config validate", "--server proxy-ru", "--server vpn-nl --json")
row(
    "route explain",
    "--server proxy-ru example.com",
    "--server proxy-ru 1.1.1.1 --sni www.gosuslugi.ru --json",
)
row("ansible inventory", "", "--json")
row("demo", "--dir {out} --json", "--dir {out}")
row("user list", f"--server {LO}", kind=HOST)
row("deploy", LO, f"{LO} --json", f"{LO} --plan", f"{LO} --plan --json", kind=HOST)
row("restart", LO, kind=HOST)
row("rollback", LO, f"{LO} --json", kind=HOST)
row("deploy history", "vpn-nl", "vpn-nl --json")
row("doctor", LO, f"{LO} --json", kind=HOST)
row("stats", f"--server {LO}", f"--server {LO} --user alice --json", kind=HOST)
row("server init", LO, f"{LO} --json", kind=HOST)
row("server status", LO, f"{LO} --json", kind=HOST)
row("server logs", LO, kind=HOST)
row("server backup take", LO, f"{LO} --json", f"{LO} --download {{out}} --json", kind=HOST)
row("server backup list", LO, f"{LO} --json", kind=HOST)
row("server backup download", f"{LO} {LO}-20260101T000000Z.tar.gz --to {{out}}", kind=HOST)
row(
    "server restore",
    f"{LO} --from ovpn-backup.tar.gz",
    f"{LO} --from ./{LO}-20260101T000000Z.tar.gz",
    kind=HOST,
)
row("server monitor up", LO, f"{LO} --json", kind=HOST)
row("server monitor down", f"{LO} --yes", f"{LO} --yes --json", kind=HOST)
row("server monitor status", LO, f"{LO} --json", kind=HOST)
row("server images list", LO, f"{LO} --json", kind=HOST)
# The target is reached first: vpn-nl (a documentation address) is never contacted.
row("server images copy", f"--from vpn-nl --to {LO}", f"--from vpn-nl --to {LO} --plan --json",
    f"--from vpn-nl --to {LO} --service prometheus --service grafana", kind=HOST)  # fmt: skip
row("server monitor telegram-setup", f"{LO} --token-file {{token}} --owner-user-id 42",
    f"{LO} --token-file {{token}} --owner-user-id 42 --json", kind=HOST)  # fmt: skip


def leaf_commands() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found.add(path)

    walk(cli, ())
    return found | set(Commands.beside)


def closed_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_secrets(data_dir: Path) -> tuple[set[str], set[str]]:
    """(secrets no command may print, user UUIDs) held by the state in `data_dir` right now."""
    app = App(data_dir)
    with app.reading() as repo:
        servers = repo.servers()
        found = {s.reality_private_key for s in servers} | {s.relay_uuid for s in servers if s.relay_uuid}
        with sqlite3.connect(data_dir / DB_FILE) as conn:
            names = conn.execute(
                "SELECT s.name, ss.name FROM server_secrets ss JOIN servers s ON s.id = ss.server_id"
            ).fetchall()
        found |= {value for server, name in names if (value := repo.secret(server, name))}
        users = {u.uuid for u in repo.users()}
    found.add((data_dir / KEY_FILE).read_text().strip())
    return found, users


def rows(*, validating: bool) -> dict[tuple[str, ...], tuple[str, list[str]]]:
    """The rows of the commands that run the external validators, or of all the others (RUNS' order kept)."""
    return {key: run for key, run in RUNS.items() if (tuple(key[:-1]) in VALIDATING) == validating}


def make_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """The seeded fleet plus LO, a Telegram setting for proxy-ru and a token file; returns its folder."""
    seed_state(tmp_path, monkeypatch, capsys)
    data_dir = tmp_path / "state"
    code, _, err = run_cli(capsys, "server", "add", "--name", LO, "--role", "vpn", "--host", "127.0.0.1",
                           "--ssh-port", str(closed_loopback_port()))  # fmt: skip
    assert code == 0, err
    # As `telegram-setup` leaves it: proxy-ru's bundle gets a webhook token.
    with App(data_dir).writing() as repo:
        repo.set_telegram("proxy-ru", TelegramSettings(owner_user_id=42))
    (tmp_path / "token").write_text(BOT_TOKEN)
    return tmp_path


def assert_no_secret_printed(
    fleet: Path, capsys: pytest.CaptureFixture[str], runs: dict[tuple[str, ...], tuple[str, list[str]]]
) -> None:
    """Run `runs` (rows of RUNS, in order) on `fleet` and search every output for every secret it must not print."""
    data_dir = fleet / "state"
    secrets, user_uuids = fleet_secrets(data_dir)
    outputs: list[tuple[str, str, str]] = []
    for number, ((*path, _), (kind, argv)) in enumerate(runs.items()):
        out_dir = fleet / f"out-{number}"
        args = [a.format(out=out_dir, token=fleet / "token") for a in argv]
        code, out, err = run_cli(capsys, *path, *args)
        command = " ".join([*path, *args])
        assert "Traceback" not in out + err, command
        if kind == HOST:
            assert code != 0, f"{command} reached a host?\n{out}{err}"
        else:
            assert code == 0, f"{command} failed:\n{out}{err}"
        if kind == REVEAL:
            assert any(value in out for value in secrets), f"{command} shows no secret"
            continue
        if path == ["demo"]:  # a fleet of its own, in its own folder
            demo_secrets, demo_users = fleet_secrets(out_dir)
            outputs.append((command, out + err, "demo"))
            secrets |= demo_secrets
            user_uuids |= demo_users
        else:
            outputs.append((command, out + err, path[0]))
        now, users = fleet_secrets(data_dir)  # new servers, keys, relay identities and tokens as they appear
        secrets |= now
        user_uuids |= users
    secrets.add(BOT_TOKEN)
    assert len(secrets) > 10 and len(user_uuids) >= 2  # the fleet really holds what is searched for
    leaks = [
        f"{command}: prints {value[:6]}..."
        for command, text, group in outputs
        for value in secrets | (set() if group in ("user", "demo") else user_uuids)
        if value in text
    ]
    assert leaks == [], "\n".join(leaks)
