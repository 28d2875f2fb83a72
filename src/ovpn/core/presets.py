"""Proxy presets as data.

A preset lists, in order, the routing rules whose matches leave the proxy directly, and the geodata feeds that
those rules read. Adding a preset means adding an entry to `PRESETS`; nothing else in the code names a preset.
Matchers use Xray's own syntax (`geosite:`, `domain:`, `geoip:`, CIDR) so they go into the config unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RuleKind = Literal["domain", "ip"]


@dataclass(frozen=True)
class PresetRule:
    """One routing rule of a preset: destinations matching any of `matchers` exit directly."""

    kind: RuleKind
    matchers: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class GeodataFeed:
    """Where a preset's geodata comes from; the checksum file holds `<sha256>  <name>`."""

    geosite_url: str
    geoip_url: str

    @property
    def geosite_sha256_url(self) -> str:
        return self.geosite_url + ".sha256sum"

    @property
    def geoip_sha256_url(self) -> str:
        return self.geoip_url + ".sha256sum"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    rules: tuple[PresetRule, ...]
    feed: GeodataFeed

    def geosite_categories(self) -> tuple[str, ...]:
        return _categories(self.rules, "geosite:")

    def geoip_categories(self) -> tuple[str, ...]:
        return _categories(self.rules, "geoip:")


def _categories(rules: tuple[PresetRule, ...], prefix: str) -> tuple[str, ...]:
    found: list[str] = []
    for rule in rules:
        for matcher in rule.matchers:
            name = matcher.removeprefix("!")
            if name.startswith(prefix) and name[len(prefix) :] not in found:
                found.append(name[len(prefix) :])
    return tuple(found)


PRESETS: dict[str, Preset] = {
    "ru": Preset(
        name="ru",
        description="Russia: Russia-only services, Russian TLDs, Russian and private addresses exit directly",
        rules=(
            PresetRule("domain", ("geosite:ru-available-only-inside",), "geosite:ru-available-only-inside"),
            PresetRule("domain", ("domain:ru", "domain:su", "domain:xn--p1ai"), "suffix .ru/.su/.xn--p1ai"),
            PresetRule("ip", ("geoip:ru",), "geoip:ru"),
            PresetRule("ip", ("geoip:private",), "geoip:private"),
        ),
        feed=GeodataFeed(
            geosite_url="https://raw.githubusercontent.com/runetfreedom/russia-blocked-geosite/release/geosite.dat",
            geoip_url="https://raw.githubusercontent.com/runetfreedom/russia-blocked-geoip/release/geoip.dat",
        ),
    ),
}

DEFAULT_PROXY_PRESET = "ru"
