"""Geodata for the fleet lab: the ru preset's categories, with the lab's own addresses placed deliberately.

`ru-site` is in geoip:ru (a preset destination: leaves the proxy directly); geoip:private stops short of the
lab's 10.214.0.0/16, so `world-site` is foreign and must leave through a backend.
"""

from __future__ import annotations

from ovpn.geodata.dat import DomainRule, DomainType, write_geoip, write_geosite
from ovpn.render.server_bundle import Geodata
from tests.fleetlab.hosts import INTERNET


def fleet_geodata() -> Geodata:
    geosite = write_geosite(
        {
            "RU-AVAILABLE-ONLY-INSIDE": [DomainRule(DomainType.DOMAIN, "gosuslugi.ru")],
            "CATEGORY-ADS-ALL": [DomainRule(DomainType.DOMAIN, "ads.example")],
        }
    )
    geoip = write_geoip(
        {
            "RU": ["95.167.0.0/16", f"{INTERNET['ru-site']}/32"],
            "PRIVATE": ["10.0.0.0/9", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7"],
        }
    )
    return Geodata(geosite, geoip)
