"""Running the real `ovpn` entry point in-process, with its exit code and output."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ovpn.cli.main import main
from tests.support.topology import XRAY_KEY_PAIRS, lab_geodata


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["ovpn", *argv]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


SEED_COMMANDS = (
    "server add --name proxy-ru --role proxy --host 198.51.100.7 --domain proxy-ru.example.net",
    "server add --name proxy-2 --role proxy --host 198.51.100.8",
    "server add --name vpn-nl --role vpn --host 203.0.113.10 --reality-private-key {pool_key} --reality-short-id 0123",
    "server add --name vpn-de --role vpn --host 203.0.113.20 --reality-private-key {pool_key} --reality-short-id 0123",
    "server add --name vpn-odd --role vpn --host 203.0.113.30 --new-identity",
    "server backend attach --proxy proxy-ru --backend vpn-nl",
    "server backend attach --proxy proxy-ru --backend vpn-de --priority 200",
    "user add --username alice --tags pilot",
)


def _use(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ovpn at `folder`: its data directory `state` and its geodata files."""
    monkeypatch.setenv("OVPN_DATA_DIR", str(folder / "state"))
    monkeypatch.setenv("OVPN_PROXY_GEOSITE_PATH", str(folder / "geosite.dat"))
    monkeypatch.setenv("OVPN_PROXY_GEOIP_PATH", str(folder / "geoip.dat"))


def seed_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A data directory with the seed's topology (plus a spare proxy and an odd vpn server) and local geodata."""
    geodata = lab_geodata()
    (tmp_path / "geosite.dat").write_bytes(geodata.geosite)
    (tmp_path / "geoip.dat").write_bytes(geodata.geoip)
    _use(tmp_path, monkeypatch)
    for command in SEED_COMMANDS:
        code, _, err = run_cli(capsys, *command.format(pool_key=XRAY_KEY_PAIRS["pool"][0]).split())
        assert code == 0, err
    return tmp_path


def seeded_copy(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """What `seed_state` makes, as a copy of `template` (seeded through the CLI on first use): the same state for
    every test of a session, at the cost of a copy instead of eight commands."""
    if not (template / "state").is_dir():
        seed_state(template, monkeypatch, capsys)
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    _use(tmp_path, monkeypatch)
    return tmp_path
