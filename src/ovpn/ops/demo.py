"""The first command to run: the seed's topology in a scratch data directory, rendered and validated.

It builds a proxy with two backends and a pilot user, using small local geodata written with the project's own
writer (no download), renders every bundle, runs every installed validator, and explains a few routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ovpn.core.links import vless_link
from ovpn.errors import OvpnError
from ovpn.geodata.dat import DomainRule, DomainType, write_geoip, write_geosite
from ovpn.ops import pools, route, servers, users
from ovpn.ops.app import App
from ovpn.ops.validate import CheckResult, render_and_validate

DEMO_GEOSITE = {
    "RU-AVAILABLE-ONLY-INSIDE": [
        DomainRule(DomainType.DOMAIN, "gosuslugi.ru"),
        DomainRule(DomainType.DOMAIN, "kinopoisk.ru"),
        DomainRule(DomainType.DOMAIN, "vkvideo.ru"),
        DomainRule(DomainType.DOMAIN, "sberbank.com"),
    ],
}
DEMO_GEOIP = {
    "RU": ["77.88.0.0/18", "87.250.224.0/19", "2a02:6b8::/29"],
    "PRIVATE": [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    ],
}
DEMO_DESTINATIONS = ("sberbank.com", "mail.ru", "example.com", "77.88.55.88", "192.168.1.1", "1.1.1.1")


@dataclass
class DemoReport:
    data_dir: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    validation: dict[str, list[CheckResult]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    routes: list[route.RouteExplanation] = field(default_factory=list)
    link: str = ""


def write_demo_geodata(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    geosite, geoip = directory / "geosite.dat", directory / "geoip.dat"
    geosite.write_bytes(write_geosite(DEMO_GEOSITE))
    geoip.write_bytes(write_geoip(DEMO_GEOIP))
    return geosite, geoip


def run_demo(data_dir: Path, progress: Callable[[str], None]) -> DemoReport:
    if (data_dir / "ovpn.db").exists():
        raise OvpnError(
            f"{data_dir} already holds ovpn state", "the demo needs a new directory: pass --dir NEW_DIR"
        )
    geosite, geoip = write_demo_geodata(data_dir / "demo-geodata")
    app = App(data_dir, env={"OVPN_PROXY_GEOSITE_PATH": str(geosite), "OVPN_PROXY_GEOIP_PATH": str(geoip)})
    report = DemoReport(data_dir)

    progress("registering proxy-ru (role proxy, preset ru) and backends vpn-nl, vpn-de")
    servers.add_server(
        app,
        servers.ServerSpec(
            name="proxy-ru",
            role="proxy",
            proxy_preset="ru",
            host="198.51.100.7",
            domain="proxy-ru.example.net",
        ),
    )
    # The second backend joins the first one's REALITY identity by default (ovpn.core.identity).
    servers.add_server(
        app, servers.ServerSpec(name="vpn-nl", role="vpn", host="203.0.113.10", domain="vpn-nl.example.net")
    )
    servers.add_server(
        app, servers.ServerSpec(name="vpn-de", role="vpn", host="203.0.113.20", domain="vpn-de.example.net")
    )
    progress("adding the pilot user alice")
    alice = users.add_user(app, "alice", tags=("pilot",))
    progress("attaching vpn-nl (priority 100) and vpn-de (priority 200) to proxy-ru")
    pools.attach(app, "proxy-ru", "vpn-nl", 100)
    pools.attach(app, "proxy-ru", "vpn-de", 200)

    for name in ("vpn-nl", "vpn-de", "proxy-ru"):
        progress(f"rendering and validating {name}")
        checked = render_and_validate(app, name, data_dir / "bundles" / name)
        report.bundles[name] = checked.bundle_dir
        report.warnings[name] = checked.warnings
        report.validation[name] = checked.results

    report.routes = [route.explain(app, "proxy-ru", d) for d in DEMO_DESTINATIONS]
    with app.reading() as repo:
        report.link = vless_link(repo.server("proxy-ru"), alice)
    return report
