"""What `server list` and `server show` read from the state."""

from __future__ import annotations

from pathlib import Path

from ovpn.ops.app import App
from ovpn.ops.server_views import server_detail, server_listing


def test_each_server_lists_its_pool_neighbours_in_attachment_order(seeded: Path) -> None:
    listing = server_listing(App(seeded / "state"))
    assert [s.name for s in listing.servers] == ["proxy-2", "proxy-ru", "vpn-de", "vpn-nl", "vpn-odd"]
    assert listing.neighbours == {
        "proxy-ru": ["vpn-nl", "vpn-de"],
        "vpn-nl": ["proxy-ru"],
        "vpn-de": ["proxy-ru"],
    }


def test_a_proxy_shows_its_pool_and_a_vpn_server_the_proxies_it_serves(seeded: Path) -> None:
    app = App(seeded / "state")
    proxy = server_detail(app, "proxy-ru")
    assert [(a.backend, a.priority) for a in proxy.backends or []] == [("vpn-nl", 100), ("vpn-de", 200)]
    assert proxy.attached_to == []
    backend = server_detail(app, "vpn-de")
    assert backend.backends is None and backend.attached_to == ["proxy-ru"]
    assert server_detail(app, "proxy-2").backends == []
