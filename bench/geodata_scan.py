"""Benchmark: listing codes and reading one small category of a large synthetic geosite.dat.

The file has one category with 700,000 domains (like runetfreedom's ru-blocked-all) and 50 small ones.
Run with `python bench/geodata_scan.py`; it prints the median of 5 runs for each operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from ovpn.geodata.dat import DomainRule, DomainType, list_codes, read_geosite_category, write_geosite

BIG_DOMAINS = 700_000
SMALL_CATEGORIES = 50
RUNS = 5


def build() -> bytes:
    categories: dict[str, list[DomainRule]] = {
        "ru-blocked-all": [
            DomainRule(DomainType.DOMAIN, f"site{i}.example{i % 97}.com") for i in range(BIG_DOMAINS)
        ]
    }
    for n in range(SMALL_CATEGORIES):
        categories[f"small-{n}"] = [
            DomainRule(DomainType.FULL, f"host{j}.small{n}.example") for j in range(20)
        ]
    return write_geosite(categories)


def median_seconds(action: Callable[[], object]) -> float:
    times: list[float] = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    start = time.perf_counter()
    data = build()
    print(f"built synthetic geosite.dat: {len(data) / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    codes = list_codes(data)
    assert len(codes) == SMALL_CATEGORIES + 1
    last = f"small-{SMALL_CATEGORIES - 1}"
    results = [
        (f"list_codes ({len(codes)} codes)", median_seconds(lambda: list_codes(data))),
        (
            f"read_geosite_category({last!r}, 20 domains)",
            median_seconds(lambda: read_geosite_category(data, last)),
        ),
        (
            f"read_geosite_category('ru-blocked-all', {BIG_DOMAINS} domains)",
            median_seconds(lambda: read_geosite_category(data, "ru-blocked-all")),
        ),
    ]
    width = max(len(label) for label, _ in results)
    for label, seconds in results:
        print(f"{label:<{width}}  median of {RUNS}: {seconds * 1e3:10.3f} ms")


if __name__ == "__main__":
    main()
