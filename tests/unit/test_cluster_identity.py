"""The vpn servers' shared REALITY identity: a new vpn server joins it, proxies keep their own, conflicts are
refused, and `--identity-from` aligns a server that differs after showing whose links change."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.support.cli import run_cli
from tests.support.topology import XRAY_KEY_PAIRS


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OVPN_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path / "state"


def call(capsys: pytest.CaptureFixture[str], command: str) -> tuple[int, str, str]:
    return run_cli(capsys, *command.split())


def ok(capsys: pytest.CaptureFixture[str], command: str) -> str:
    code, out, err = call(capsys, command)
    assert code == 0, err
    return out


def identity(capsys: pytest.CaptureFixture[str], name: str) -> tuple[str, str, str, str]:
    doc = json.loads(ok(capsys, f"server show {name} --reveal-secrets --json"))
    return (
        doc["reality_private_key"],
        doc["reality_short_id"],
        doc["reality_server_name"],
        doc["reality_target"],
    )


def test_the_readme_rollout_from_zero_joins_one_identity_and_attaches_both(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ok(capsys, "server add --name vpn-nl --role vpn --host 203.0.113.10")
    assert "  REALITY identity:   its own" in first.splitlines()
    second = ok(capsys, "server add --name vpn-de --role vpn --host 203.0.113.20")
    assert "  REALITY identity:   shared with vpn-nl" in second.splitlines()
    ok(capsys, "server add --name proxy-ru --role proxy --host 198.51.100.7")
    assert identity(capsys, "vpn-de") == identity(capsys, "vpn-nl")
    assert identity(capsys, "proxy-ru")[0] != identity(capsys, "vpn-nl")[0]  # a proxy keeps its own
    ok(capsys, "server backend attach --proxy proxy-ru --backend vpn-nl")
    ok(capsys, "server backend attach --proxy proxy-ru --backend vpn-de --priority 200")
    third = json.loads(ok(capsys, "server add --name vpn-fi --role vpn --host 203.0.113.30 --json"))
    assert third["identity_shared_with"] == "vpn-de, vpn-nl"


def test_a_given_value_that_differs_from_the_cluster_is_refused_and_nothing_is_written(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "server add --name vpn-nl --role vpn --host 203.0.113.10 --reality-short-id 0123")
    public = json.loads(ok(capsys, "server show vpn-nl --json"))["reality_public_key"]
    code, _, err = call(capsys, "server add --name vpn-de --role vpn --host 203.0.113.20 "
                           "--reality-short-id beef --reality-server-name www.apple.com")  # fmt: skip
    assert code == 1
    assert err.splitlines() == [
        "error: --reality-short-id, --reality-server-name of vpn-de differ from the REALITY "
        f"identity of vpn-nl (public key {public}, short id 0123, server name www.microsoft.com, target "
        "www.microsoft.com:443)",
        "hint: drop them to join that identity, or pass --new-identity to give vpn-de one of its own",
    ]
    assert [s["name"] for s in json.loads(ok(capsys, "server list --json"))] == ["vpn-nl"]
    # The same values given explicitly are no conflict; --new-identity takes the given ones as they are.
    ok(capsys, "server add --name vpn-de --role vpn --host 203.0.113.20 --reality-short-id 0123")
    ok(
        capsys,
        "server add --name vpn-x --role vpn --host 203.0.113.40 --new-identity --reality-short-id beef",
    )
    assert identity(capsys, "vpn-de") == identity(capsys, "vpn-nl")
    assert identity(capsys, "vpn-x")[:2] != identity(capsys, "vpn-nl")[:2]


def test_servers_that_already_differ_give_a_new_one_its_own_with_a_warning(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "server add --name vpn-nl --role vpn --host 203.0.113.10")
    ok(capsys, "server add --name vpn-odd --role vpn --host 203.0.113.30 --new-identity")
    code, _, err = call(capsys, "server add --name vpn-de --role vpn --host 203.0.113.20")
    assert code == 0
    assert err.splitlines() == [
        "warning: the vpn servers (vpn-nl, vpn-odd) do not share one REALITY identity: vpn-de gets one of its own; "
        "`ovpn server set vpn-de --identity-from OTHER` joins one of theirs"
    ]
    ok(capsys, "server add --name vpn-fi --role vpn --host 203.0.113.40 --identity-from vpn-odd")
    assert identity(capsys, "vpn-fi") == identity(capsys, "vpn-odd")


def test_attaching_a_backend_that_differs_names_identity_from_which_shows_whose_links_change(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_key = XRAY_KEY_PAIRS["pool"][0]
    ok(capsys, "server add --name proxy-ru --role proxy --host 198.51.100.7")
    ok(capsys, f"server add --name vpn-nl --role vpn --host 203.0.113.10 --reality-private-key {pool_key}")
    ok(capsys, "server add --name vpn-odd --role vpn --host 203.0.113.30 --new-identity")
    ok(capsys, "user add --username alice --tags pilot")
    ok(capsys, "user add --username bob")
    ok(capsys, "server backend attach --proxy proxy-ru --backend vpn-nl")
    code, _, err = call(capsys, "server backend attach --proxy proxy-ru --backend vpn-odd")
    assert code == 1
    assert err.splitlines()[-1] == (
        "hint: every backend of a pool needs the same REALITY identity: `ovpn server set vpn-odd --identity-from "
        "vpn-nl` gives vpn-odd the identity of vpn-nl (it first shows whose direct links change), or attach a "
        "matching backend instead"
    )
    before = identity(capsys, "vpn-odd")
    code, _, err = call(capsys, "server set vpn-odd --identity-from vpn-nl")
    assert code == 130 and err.splitlines()[0] == (
        "warning: vpn-odd takes the REALITY identity of vpn-nl: the direct links of 2 users to vpn-odd change: "
        "alice, bob"
    )
    assert identity(capsys, "vpn-odd") == before  # nothing without a yes
    code, out, err = call(capsys, "server set vpn-odd --identity-from vpn-nl --json")
    assert code == 1 and json.loads(out)["error"] == "--identity-from with --json needs --yes"
    out = ok(capsys, "server set vpn-odd --identity-from vpn-nl --yes")
    assert out.startswith("updated vpn-odd: reality_private_key, reality_server_name, reality_short_id")
    assert identity(capsys, "vpn-odd") == identity(capsys, "vpn-nl")
    ok(capsys, "server backend attach --proxy proxy-ru --backend vpn-odd")
    code, _, err = call(capsys, "server set vpn-odd --identity-from vpn-nl --yes")
    assert code == 1 and err.splitlines()[0] == "error: vpn-odd already has the REALITY identity of vpn-nl"
    code, _, err = call(capsys, "server set vpn-nl --identity-from proxy-ru --yes")
    assert err.splitlines()[0] == "error: proxy-ru is a proxy: proxies keep REALITY identities of their own"
