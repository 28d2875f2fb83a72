"""The operator's happy paths through the real entry point: JSON output, links, QR files, renders, routes."""

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import run_cli

from ovpn.core.model import RELAY_EMAIL


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    return out


def ok_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(ok(capsys, *argv, "--json"))


def test_server_json_never_shows_the_private_key_unless_asked(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = ok_json(capsys, "server", "list")
    assert isinstance(listed, list) and [s["name"] for s in listed] == [
        "proxy-2",
        "proxy-ru",
        "vpn-de",
        "vpn-nl",
        "vpn-odd",
    ]
    assert all("reality_private_key" not in s for s in listed)
    shown = ok_json(capsys, "server", "show", "vpn-nl")
    assert (
        isinstance(shown, dict)
        and "reality_private_key" not in shown
        and shown["attached_to"] == ["proxy-ru"]
    )
    revealed = ok_json(capsys, "server", "show", "vpn-nl", "--reveal-secrets")
    assert isinstance(revealed, dict) and len(revealed["reality_private_key"]) == 43


def test_proxy_defaults_to_the_ru_preset_and_backends_share_one_relay_identity(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = ok_json(capsys, "server", "show", "proxy-ru")
    nl = ok_json(capsys, "server", "show", "vpn-nl")
    de = ok_json(capsys, "server", "show", "vpn-de")
    odd = ok_json(capsys, "server", "show", "vpn-odd")
    assert isinstance(proxy, dict) and isinstance(nl, dict) and isinstance(de, dict) and isinstance(odd, dict)
    assert proxy["proxy_preset"] == "ru"
    assert proxy["backends"] == [{"name": "vpn-nl", "priority": 100}, {"name": "vpn-de", "priority": 200}]
    assert nl["relay_identity"] and nl["relay_identity"] == de["relay_identity"]
    assert (
        nl["reality_short_id"] == de["reality_short_id"]
    )  # the relay authenticates with the pool's short id
    assert odd["relay_identity"] is None


def test_attach_is_idempotent_and_priority_can_change(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = ok_json(capsys, "server", "backend", "attach", "--proxy", "proxy-ru", "--backend", "vpn-nl")
    assert again == {"proxy": "proxy-ru", "backend": "vpn-nl", "priority": 100, "changed": False,
                     "provisioned_relay_identity": False}  # fmt: skip
    ok(
        capsys,
        "server",
        "backend",
        "attach",
        "--proxy",
        "proxy-ru",
        "--backend",
        "vpn-de",
        "--priority",
        "50",
    )
    listed = ok_json(capsys, "server", "backend", "list", "--proxy", "proxy-ru")
    assert listed == [{"backend": "vpn-de", "priority": 50}, {"backend": "vpn-nl", "priority": 100}]


def test_detach_then_reattach_keeps_the_relay_identity(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ok_json(capsys, "server", "show", "vpn-de")
    ok(capsys, "server", "backend", "detach", "--proxy", "proxy-ru", "--backend", "vpn-de")
    assert ok_json(capsys, "server", "backend", "list", "--proxy", "proxy-ru") == [
        {"backend": "vpn-nl", "priority": 100}
    ]
    ok(capsys, "server", "backend", "attach", "--proxy", "proxy-ru", "--backend", "vpn-de")
    after = ok_json(capsys, "server", "show", "vpn-de")
    assert (
        isinstance(before, dict)
        and isinstance(after, dict)
        and before["relay_identity"] == after["relay_identity"]
    )


def test_server_set_moves_the_target_with_the_server_name(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "server", "set", "vpn-odd", "--reality-server-name", "www.apple.com", "--ssh-port", "2222")
    shown = ok_json(capsys, "server", "show", "vpn-odd")
    assert isinstance(shown, dict)
    assert (shown["reality_server_name"], shown["reality_target"], shown["ssh_port"]) == (
        "www.apple.com", "www.apple.com:443", 2222)  # fmt: skip


def test_remove_after_detaching(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "server", "backend", "detach", "--proxy", "proxy-ru", "--backend", "vpn-de")
    ok(capsys, "server", "remove", "vpn-de")
    names = ok_json(capsys, "server", "list")
    assert isinstance(names, list) and "vpn-de" not in [s["name"] for s in names]


def test_user_lifecycle(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(
        capsys,
        "user",
        "add",
        "--username",
        "bob",
        "--expiry",
        "2020-01-01",
        "--quota-gb",
        "50",
        "--tags",
        "b,a",
    )
    bob = ok_json(capsys, "user", "show", "--username", "bob")
    assert isinstance(bob, dict)
    assert (bob["email"], bob["expired"], bob["active"], bob["tags"]) == (
        "bob@global",
        True,
        False,
        ["a", "b"],
    )
    assert bob["quota_bytes"] == 50 * 1024**3
    ok(capsys, "user", "expiry-clear", "--username", "bob")
    ok(capsys, "user", "disable", "--username", "bob")
    bob = ok_json(capsys, "user", "show", "--username", "bob")
    assert isinstance(bob, dict) and (bob["expiry"], bob["enabled"], bob["active"]) == (None, False, False)
    ok(capsys, "user", "expiry-set", "--username", "bob", "--date", "2999-12-31")
    ok(capsys, "user", "quota-set", "--username", "bob", "--gb", "0")
    bob = ok_json(capsys, "user", "show", "--username", "bob")
    assert isinstance(bob, dict) and (bob["active"], bob["quota_is_default"]) == (True, True)
    assert [u["username"] for u in ok_json(capsys, "user", "list", "--tag", "pilot")] == ["alice"]
    ok(capsys, "user", "rm", "--username", "bob")
    assert [u["username"] for u in ok_json(capsys, "user", "list")] == ["alice"]


def test_user_link_prints_the_link_and_a_qr_and_writes_a_private_png(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = seeded / "alice.png"
    out = ok(capsys, "user", "link", "--server", "proxy-ru", "--username", "alice", "--qr-file", str(png))
    link, qr = out.split("\n", 1)
    assert link.startswith("vless://") and "@proxy-ru.example.net:443?" in link
    assert "█" in qr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(png.stat().st_mode) == 0o600


def test_links_by_tag_for_a_pilot(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "user", "add", "--username", "bob", "--tags", "pilot")
    ok(capsys, "user", "add", "--username", "carol")
    out_dir = seeded / "pilot"
    ok(capsys, "user", "link", "--server", "proxy-ru", "--tag", "pilot", "--out", str(out_dir))
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["proxy-ru-alice.png", "proxy-ru-alice.txt", "proxy-ru-bob.png", "proxy-ru-bob.txt"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out_dir.iterdir())


def test_xray_json_is_a_client_config_for_that_server(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = json.loads(ok(capsys, "user", "link", "--server", "vpn-nl", "--username", "alice", "--format",
                           "xray-json", "--socks-port", "1081"))  # fmt: skip
    assert config["inbounds"][0]["port"] == 1081
    assert config["outbounds"][0]["settings"]["vnext"][0]["address"] == "203.0.113.10"


def test_config_render_writes_the_bundle_with_modes(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = seeded / "bundle"
    result = ok_json(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out), "--image",
                     "xray=registry.example/xray:26.7.28")  # fmt: skip
    assert isinstance(result, dict) and result["warnings"] == []
    assert stat.S_IMODE((out / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "xray/config.json").stat().st_mode) == 0o640
    assert "XRAY_IMAGE=registry.example/xray:26.7.28\n" in (out / ".env").read_text()
    clients = json.loads((out / "xray/config.json").read_text())["inbounds"][0]["settings"]["clients"]
    assert [c["email"] for c in clients] == ["alice@global", RELAY_EMAIL]
    # Rendering again replaces the previous bundle (here: a proxy bundle over a vpn one leaves no stale files).
    ok(capsys, "config", "render", "--server", "vpn-odd", "--out", str(out))
    clients = json.loads((out / "xray/config.json").read_text())["inbounds"][0]["settings"]["clients"]
    assert [c["email"] for c in clients] == ["alice@global"]


def test_the_agent_watches_a_certificate_once_one_is_named(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = "/etc/letsencrypt/live/vpn.example/fullchain.pem"
    ok(capsys, "server", "set", "vpn-nl", "--agent-cert-file", cert)
    shown = ok_json(capsys, "server", "show", "vpn-nl")
    assert isinstance(shown, dict) and shown["agent_cert_file"] == cert
    out = seeded / "bundle"
    ok(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out))
    assert f"OVPN_AGENT_CERT_FILE={cert}\n" in (out / ".env").read_text()
    ok(capsys, "server", "set", "vpn-nl", "--agent-cert-file", "")
    ok(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out))
    assert "OVPN_AGENT_CERT_FILE" not in (out / ".env").read_text()


def test_a_proxy_without_backends_renders_and_warns(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "config", "render", "--server", "proxy-2", "--out", str(seeded / "p2"))
    assert code == 0 and "no backend attached" in err and "fail closed" in err
    config = json.loads((seeded / "p2/xray/config.json").read_text())
    assert config["outbounds"][0] == {"tag": "foreign-pool", "protocol": "blackhole", "settings": {}}
    assert "    server " not in (seeded / "p2/haproxy/haproxy.cfg").read_text()


@pytest.mark.parametrize(
    ("destination", "outbound", "rule"),
    [
        ("kinopoisk.com", "direct", "geosite:ru-available-only-inside"),
        ("www.gosuslugi.ru", "direct", "geosite:ru-available-only-inside"),
        ("mail.ru", "direct", "suffix .ru/.su/.xn--p1ai"),
        ("example.su", "direct", "suffix .ru/.su/.xn--p1ai"),
        ("пример.рф", "direct", "suffix .ru/.su/.xn--p1ai"),
        ("95.167.1.1", "direct", "geoip:ru"),
        ("2a00:1fa0::1", "direct", "geoip:ru"),
        ("10.20.30.40", "direct", "geoip:private"),
        ("notru.com", "foreign-pool", "foreign-catch-all"),
        ("google.com", "foreign-pool", "foreign-catch-all"),
        ("8.8.8.8", "foreign-pool", "foreign-catch-all"),
        ("127.0.0.1", "block", "guard-loopback"),
        ("ovpn-agent", "block", "guard-local-names"),
    ],
)
def test_route_explain(seeded: Path, capsys: pytest.CaptureFixture[str], destination: str, outbound: str,
                       rule: str) -> None:  # fmt: skip
    result = ok_json(capsys, "route", "explain", "--server", "proxy-ru", destination)
    assert isinstance(result, dict) and (result["outbound"], result["rule"]) == (outbound, rule)


def test_route_explain_on_an_empty_pool_says_fail_closed(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ok_json(capsys, "route", "explain", "--server", "proxy-2", "google.com")
    assert isinstance(result, dict) and result["pool_empty"] and "fail closed" in result["meaning"]
