"""Relay cost in the namespace lab: the proxy path against a backend's direct link, for TLS and plain traffic.

Proxy path: client Xray -> proxy Xray -> HAProxy -> vpn-1 Xray -> internet host.
Direct link: client Xray -> vpn-1 Xray -> internet host (alice's own link to vpn-1).

* Throughput: one large download (default 200 MB) per run, runs interleaved between paths; median Mbit/s.
* Connection setup: 200 new connections in a row per run, each a small GET; the time from the start of the
  connection to the first byte of the response (SOCKS, every REALITY hop, the site's TLS handshake, one
  request round trip); p50 and p99 per run, medians over runs.

Goals (issue 4): proxy path at least 80% of the direct link's throughput for TLS traffic, at most 5 ms added
p50 setup latency. Every host runs on this one machine (2 cores, shared with other work): the proxy path runs
two more processes on the same cores, so throughput here is bounded by CPU, not by a network.

Run as root from the repository root (tools from .ci/install-tools):
    .venv/bin/python -m bench.lab_relay_cost [--runs 5] [--size-mb 200] [--latency-runs 3] [--connections 200]
        [--haproxy-config FILE]   # try another haproxy.cfg instead of the rendered one (experiments)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tests.lab.measure import median, percentile
from tests.lab.topology import Lab, lab_session

PATHS = {"proxy": "alice@proxy-ru", "direct": "alice@vpn-1"}
SCHEMES = {"TLS": "https", "plain": "http"}
SITE = "www.foreign-news.test"


def throughput(lab: Lab, runs: int, size: int) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    for run in range(runs):
        for kind, scheme in SCHEMES.items():
            for path, client in PATHS.items():
                record = lab.bulk(client, f"{scheme}://{SITE}/bytes/{size}")
                if not record["ok"]:
                    raise SystemExit(f"transfer failed on the {path} path: {record}")
                results.setdefault((kind, path), []).append(record["mbit_s"])
                print(f"  run {run + 1} {kind:5} {path:6} {record['mbit_s']:8.0f} Mbit/s", flush=True)
    return results


def setup_latency(lab: Lab, runs: int, connections: int) -> dict[tuple[str, str], list[tuple[float, float]]]:
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run in range(runs):
        for kind, scheme in SCHEMES.items():
            for path, client in PATHS.items():
                records = lab.get(client, [f"{scheme}://{SITE}/"], count=connections)
                failed = [r for r in records if not r["ok"]]
                if failed:
                    raise SystemExit(f"{len(failed)} connections failed on the {path} path: {failed[0]}")
                setups = [r["setup_ms"] for r in records]
                p50, p99 = percentile(setups, 0.50), percentile(setups, 0.99)
                results.setdefault((kind, path), []).append((p50, p99))
                print(f"  run {run + 1} {kind:5} {path:6} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument(
        "--haproxy-config", type=Path, help="run this haproxy.cfg instead of the rendered one"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ovpn-bench-lab-") as work, lab_session(Path(work)) as lab:
        print(
            f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start (shared with other work)"
        )
        for client in PATHS.values():  # warm up: REALITY learns its target's record sizes on first use
            lab.get(client, [f"https://{SITE}/", f"http://{SITE}/"], count=10)

        print(f"\nthroughput, one {args.size_mb} MB download per run:")
        size = args.size_mb * 1024 * 1024
        rates = throughput(lab, args.runs, size)
        print(f"\nconnection setup, {args.connections} connections per run:")
        setups = setup_latency(lab, args.latency_runs, args.connections)

        print(f"\nMEDIANS (throughput over {args.runs} runs, setup over {args.latency_runs} runs)")
        for kind in SCHEMES:
            proxy, direct = median(rates[(kind, "proxy")]), median(rates[(kind, "direct")])
            p50 = {p: median([s[0] for s in setups[(kind, p)]]) for p in PATHS}
            p99 = {p: median([s[1] for s in setups[(kind, p)]]) for p in PATHS}
            print(
                f"{kind:5} throughput: proxy {proxy:7.0f} Mbit/s, direct {direct:7.0f} Mbit/s -> "
                f"{proxy / direct:.0%} of direct (goal for TLS: >= 80%)"
            )
            print(
                f"{kind:5} setup p50: proxy {p50['proxy']:.2f} ms, direct {p50['direct']:.2f} ms -> "
                f"+{p50['proxy'] - p50['direct']:.2f} ms (goal: <= 5 ms); "
                f"p99: proxy {p99['proxy']:.2f} ms, direct {p99['direct']:.2f} ms"
            )
        print(f"load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
