"""The files `user link --tag T --out DIR` writes for one user: their names and contents."""

from __future__ import annotations

import json

from ovpn.core.links import client_config, vless_link
from ovpn.core.model import Server, User
from ovpn.ops.links import UserLink, link_files

SERVER = Server(
    name="vpn-nl", role="vpn", host="203.0.113.10", domain="vpn.example.net", ssh_user="root", ssh_port=22,
    xray_version="26.7.28", reality_private_key="k", reality_public_key="p" * 43, reality_short_id="ab",
    reality_server_name="www.microsoft.com", reality_target="www.microsoft.com:443",
)  # fmt: skip
ALICE = User(username="alice", uuid="3f1c2a7e-8b9d-4c1e-9f00-0123456789ab", email="alice@global")
LINK = UserLink(SERVER, ALICE, vless_link(SERVER, ALICE))


def test_a_share_link_is_written_as_text_and_as_a_qr_png_named_server_dash_user() -> None:
    files = link_files(LINK, "uri", socks_port=10808)
    assert sorted(files) == ["vpn-nl-alice.png", "vpn-nl-alice.txt"]
    assert files["vpn-nl-alice.txt"] == (LINK.link + "\n").encode()
    assert files["vpn-nl-alice.png"].startswith(b"\x89PNG\r\n\x1a\n")


def test_an_xray_client_config_is_one_json_file_with_the_socks_port() -> None:
    files = link_files(LINK, "xray-json", socks_port=1080)
    assert list(files) == ["vpn-nl-alice.json"]
    text = files["vpn-nl-alice.json"].decode()
    assert text.endswith("}\n") and json.loads(text) == client_config(SERVER, ALICE, 1080)
