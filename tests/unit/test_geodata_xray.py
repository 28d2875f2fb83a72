"""Real Xray loads geodata written by `ovpn.geodata.dat` (`xray run -test` with XRAY_LOCATION_ASSET)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

from ovpn.geodata.dat import (
    DomainRule,
    DomainType,
    GeoIPCategory,
    IPNetwork,
    write_geoip_categories,
    write_geosite,
)


def _write_assets(directory: Path) -> None:
    geosite = write_geosite(
        {
            "category-ads-all": [DomainRule(DomainType.DOMAIN, "ads.example")],
            "ru-available-only-inside": [
                DomainRule(DomainType.DOMAIN, "vk.com"),
                DomainRule(DomainType.FULL, "kino.example"),
                DomainRule(DomainType.PLAIN, "gosuslugi"),
                DomainRule(DomainType.REGEX, r"^api\d+\.example\.ru$"),
            ],
        }
    )
    geoip = write_geoip_categories(
        {
            "ru": GeoIPCategory((_net("77.88.0.0/18"), _net("2a02:6b8::/32"))),
            "private": GeoIPCategory((_net("10.0.0.0/8"), _net("fc00::/7"))),
            "not-ru": GeoIPCategory((_net("77.88.0.0/18"),), reverse_match=True),
        }
    )
    (directory / "geosite.dat").write_bytes(geosite)
    (directory / "geoip.dat").write_bytes(geoip)


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def _config(site: str, ip: str) -> dict[str, object]:
    return {
        "log": {"loglevel": "warning"},
        "outbounds": [{"protocol": "freedom", "tag": "direct"}, {"protocol": "blackhole", "tag": "block"}],
        "routing": {
            "domainStrategy": "AsIs",
            "rules": [
                {"type": "field", "domain": [f"geosite:{site}", "domain:ru"], "outboundTag": "direct"},
                {
                    "type": "field",
                    "ip": [f"geoip:{ip}", "geoip:private", "geoip:not-ru"],
                    "outboundTag": "block",
                },
            ],
        },
    }


def _xray_test(xray: Path, directory: Path, site: str, ip: str) -> subprocess.CompletedProcess[str]:
    config = directory / f"config-{site}-{ip}.json"
    config.write_text(json.dumps(_config(site, ip)))
    env = {**os.environ, "XRAY_LOCATION_ASSET": str(directory)}
    return subprocess.run(
        [str(xray), "run", "-test", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.integration
def test_xray_loads_written_geodata(xray_binary: Path, tmp_path: Path) -> None:
    _write_assets(tmp_path)
    ok = _xray_test(xray_binary, tmp_path, "ru-available-only-inside", "ru")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Configuration OK" in ok.stdout + ok.stderr

    missing_site = _xray_test(xray_binary, tmp_path, "ru-blocked", "ru")
    assert missing_site.returncode != 0
    assert "RU-BLOCKED" in (missing_site.stdout + missing_site.stderr).upper()

    missing_ip = _xray_test(xray_binary, tmp_path, "ru-available-only-inside", "cn")
    assert missing_ip.returncode != 0
    assert "CN" in missing_ip.stdout + missing_ip.stderr
