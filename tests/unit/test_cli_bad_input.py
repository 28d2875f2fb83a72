"""Bad input: one clear error line plus a hint, a non-zero exit, and the state left exactly as it was."""

import shlex
import sqlite3
from pathlib import Path

import pytest
from tests.support.cli import run_cli as run
from tests.support.topology import XRAY_KEY_PAIRS

from ovpn.geodata.dat import DomainRule, DomainType, write_geoip, write_geosite
from ovpn.state.db import DB_FILE

POOL_KEY = XRAY_KEY_PAIRS["pool"][0]


def dump(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "state" / DB_FILE) as conn:
        return list(conn.iterdump())


BAD = {
    "unknown role": ("server add --name x --role exit --host 203.0.113.1", "unknown role"),
    "unknown preset": (
        "server add --name x --role proxy --proxy-preset zz --host 203.0.113.1",
        "unknown proxy preset",
    ),
    "preset on vpn": (
        "server add --name x --role vpn --proxy-preset ru --host 203.0.113.1",
        "only for proxy servers",
    ),
    "shell name": ("server add --name 'x;reboot' --role vpn --host 203.0.113.1", "invalid server name"),
    "name with space": ("server add --name 'x y' --role vpn --host 203.0.113.1", "invalid server name"),
    "bad host": ("server add --name x --role vpn --host '203.0.113.1;id'", "invalid host"),
    "short IPv4 as a name": ("server add --name x --role vpn --host 127.1", "reads as a number"),
    "hex IPv4 as a name": ("server add --name x --role vpn --host 0x7f.1", "reads as a number"),
    "decimal IPv4 as a name": ("server add --name x --role vpn --host 2130706433", "reads as a number"),
    "five-part address": ("server set vpn-nl --domain 1.2.3.4.5", "reads as a number"),
    "numeric REALITY name": ("server set vpn-odd --reality-server-name 999.1.1.1", "reads as a number"),
    "bad ssh port": (
        "server add --name x --role vpn --host 203.0.113.1 --ssh-port 70000",
        "invalid ssh-port",
    ),
    "bad port": ("server add --name x --role vpn --host 203.0.113.1 --port 0", "invalid port"),
    "relative cert file": (
        "server set vpn-nl --agent-cert-file certs/fullchain.pem",
        "invalid --agent-cert-file",
    ),
    "cert file with a variable": (
        "server set vpn-nl --agent-cert-file '/etc/$$HOME.pem'",
        "invalid --agent-cert-file",
    ),
    "cert file climbing": (
        "server set vpn-nl --agent-cert-file /etc/../root/x.pem",
        "invalid --agent-cert-file",
    ),
    "malformed key": (
        "server add --name x --role vpn --host 203.0.113.1 --reality-private-key not-a-key",
        "malformed REALITY private key",
    ),
    "malformed short id": (
        "server add --name x --role vpn --host 203.0.113.1 --reality-short-id xyz",
        "malformed REALITY short id",
    ),
    "key mismatch": (
        "server add --name x --role vpn --host 203.0.113.1 --reality-private-key {pool} --reality-public-key {solo_public}",
        "does not match the private key",
    ),
    "duplicate server": ("server add --name vpn-nl --role vpn --host 203.0.113.1", "already exists"),
    "proxy as backend": ("server backend attach --proxy proxy-ru --backend proxy-2", "cannot be a backend"),
    "backend to a vpn server": ("server backend attach --proxy vpn-de --backend vpn-nl", "not a proxy"),
    "parity mismatch": (
        "server backend attach --proxy proxy-ru --backend vpn-odd",
        "REALITY public key differs",
    ),
    "parity broken by set": (
        "server set vpn-nl --reality-server-name www.apple.com",
        "REALITY server name differs",
    ),
    "role change": ("server set vpn-nl --role proxy", "No such option"),
    "remove attached backend": ("server remove vpn-de", "still a backend of proxy-ru"),
    "remove proxy with backends": ("server remove proxy-ru", "still has backends attached"),
    "missing server": ("server show nope", "no server named 'nope'"),
    "missing server render": ("config render --server nope --out /tmp/never", "no server named 'nope'"),
    "missing user": ("user show --username nobody", "no user named 'nobody'"),
    "missing user link": ("user link --server vpn-nl --username nobody", "no user named"),
    "bad username": ("user add --username '$(id)'", "invalid username"),
    "duplicate user": ("user add --username alice", "already exists"),
    "bad expiry": ("user add --username bob --expiry 31.12.2026", "invalid expiry"),
    "bad uuid": ("user add --username bob --uuid nope", "invalid UUID"),
    "negative quota": ("user quota-set --username alice --gb -1", "invalid quota"),
    "username in another case": ("user add --username Alice", "already exists"),
    "email in another case": ("user add --username bob --email ALICE@Global", "already exists"),
    "default email in another case": ("user add --username ALICE --email bob@global", "already exists"),
    "relay email": ("user add --username bob --email proxy-service@cluster", "reserved"),
    "relay email in capitals": ("user add --username bob --email PROXY-SERVICE@CLUSTER", "reserved"),
    "agent marker email": ("user add --username bob --email ovpn-agent-marker@local", "reserved"),
    "huge quota": ("user add --username bob --quota-gb 1e30", "invalid quota"),
    "infinite quota": ("user add --username bob --quota-gb inf", "invalid quota"),
    "nan quota": ("user add --username bob --quota-gb nan", "invalid quota"),
    "quota rounding to nothing": ("user add --username bob --quota-gb 1e-12", "less than 1 MiB"),
    "huge quota set": ("user quota-set --username alice --gb 1e300", "invalid quota"),
    "huge priority": (
        "server backend attach --proxy proxy-ru --backend vpn-nl --priority 99999999999999999999999",
        "invalid priority",
    ),
    "negative priority": (
        "server backend attach --proxy proxy-ru --backend vpn-nl --priority -1",
        "invalid priority",
    ),
    "bad image override": ("server set vpn-nl --image 'xray=evil;rm'", "invalid image reference"),
    "route on vpn": ("route explain --server vpn-nl example.com", "is a vpn server"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_cleanly(case: str, seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command, expected = BAD[case]
    argv = shlex.split(command.format(pool=POOL_KEY, solo_public=XRAY_KEY_PAIRS["solo"][1]))
    before = dump(seeded)
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert expected in err
    assert "Traceback" not in err + out
    if expected != "No such option":  # usage errors are Click's own two-line format
        lines = err.strip().splitlines()
        assert lines[0].startswith("error: ") and len(lines) == 2 and lines[1].startswith("hint: "), err
    assert dump(seeded) == before


def test_geodata_without_a_needed_category_is_refused(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (seeded / "thin-geosite.dat").write_bytes(
        write_geosite({"OTHER": [DomainRule(DomainType.FULL, "x.example")]})
    )
    (seeded / "thin-geoip.dat").write_bytes(write_geoip({"PRIVATE": ["10.0.0.0/8"]}))
    monkeypatch.setenv("OVPN_PROXY_GEOSITE_PATH", str(seeded / "thin-geosite.dat"))
    monkeypatch.setenv("OVPN_PROXY_GEOIP_PATH", str(seeded / "thin-geoip.dat"))
    before = dump(seeded)
    code, _, err = run(capsys, "config", "render", "--server", "proxy-ru", "--out", str(seeded / "out"))
    assert code == 1
    assert "ru-available-only-inside" in err and "thin-geosite.dat" in err
    assert '"ru"' in err and "thin-geoip.dat" in err
    assert not (seeded / "out").exists()
    assert dump(seeded) == before


def test_only_one_geodata_override_is_refused(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OVPN_PROXY_GEOIP_PATH")
    code, _, err = run(capsys, "config", "render", "--server", "proxy-ru", "--out", str(seeded / "out"))
    assert code == 1 and "OVPN_PROXY_GEOIP_PATH" in err
