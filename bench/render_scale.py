"""Render a proxy with 10 backends and 10,000 users: the pure render, and `config render` through the CLI.

Prints medians over repeated runs (target: under 1 s). Run from the repository root: .venv/bin/python -m bench.render_scale
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.support.topology import BACKEND_1, NOW, PROXY, SECRETS, XRAY_KEY_PAIRS, lab_geodata
from tests.support.topology import request as base_request

from ovpn.core.model import PoolMember, User
from ovpn.ops import pools, servers
from ovpn.ops.app import App
from ovpn.render.server_bundle import render_server_bundle

USERS = 10_000
BACKENDS = 10
RUNS = 7


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def pure_render() -> float:
    users = [
        User(username=f"user{i:05d}", uuid=str(uuid.UUID(int=i + 1)), email=f"user{i:05d}@global")
        for i in range(USERS)
    ]
    pool = [
        PoolMember(replace(BACKEND_1, name=f"vpn-{i:02d}", host=f"203.0.113.{i + 1}"), 100 + i)
        for i in range(BACKENDS)
    ]
    req = replace(base_request(PROXY), users=users, pool=pool, now=NOW, secrets=SECRETS)
    return median_seconds(lambda: render_server_bundle(req))


def cli_render(tmp: Path) -> float:
    geodata = lab_geodata()
    (tmp / "geosite.dat").write_bytes(geodata.geosite)
    (tmp / "geoip.dat").write_bytes(geodata.geoip)
    env = {
        "OVPN_PROXY_GEOSITE_PATH": str(tmp / "geosite.dat"),
        "OVPN_PROXY_GEOIP_PATH": str(tmp / "geoip.dat"),
    }
    app = App(tmp / "state", env=env)
    servers.add_server(app, servers.ServerSpec(name="proxy-ru", role="proxy", host="198.51.100.7"))
    for i in range(BACKENDS):
        name = f"vpn-{i:02d}"
        servers.add_server(
            app,
            servers.ServerSpec(
                name=name,
                role="vpn",
                host=f"203.0.113.{i + 1}",
                reality_private_key=XRAY_KEY_PAIRS["pool"][0],
                reality_short_id="0123456789abcdef",
            ),
        )
        pools.attach(app, "proxy-ru", name, 100 + i)
    with app.writing() as repo:
        for i in range(USERS):
            repo.add_user(
                User(username=f"user{i:05d}", uuid=str(uuid.UUID(int=i + 1)), email=f"user{i:05d}@global")
            )
    argv = [
        sys.executable,
        "-m",
        "ovpn",
        "--data-dir",
        str(tmp / "state"),
        "config",
        "render",
        "--server",
        "proxy-ru",
        "--out",
        str(tmp / "out"),
    ]
    full_env = {**os.environ, **env}
    return median_seconds(lambda: subprocess.run(argv, env=full_env, check=True, capture_output=True))


def main() -> None:
    pure = pure_render()
    with tempfile.TemporaryDirectory() as tmp:
        cli = cli_render(Path(tmp))
    print(f"proxy with {BACKENDS} backends and {USERS} users, median of {RUNS} runs:")
    print(f"  render_server_bundle (pure):           {pure * 1000:8.1f} ms  ({pure:.2f} of the 1 s target)")
    print(
        f"  ovpn config render (process, state, write): {cli * 1000:8.1f} ms  ({cli:.2f} of the 1 s target)"
    )


if __name__ == "__main__":
    main()
