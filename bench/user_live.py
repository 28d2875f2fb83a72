"""`ovpn user add` applied live through the agent (no Xray restart) on 1 and on 6 deployed hosts of the fleet lab.

The time is the whole command as the operator sees it: state change, render, and per host in parallel: persist
config.json, `/users/sync` through the agent. Prints medians. Needs root (the fleet lab).
Run from the repository root: .venv/bin/python -m bench.user_live [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.conftest import prefetch_agent_wheels
from tests.fleetlab.engine import start_engine
from tests.fleetlab.hosts import FleetLab, lab_lock, start_lab, stop_lab
from tests.fleetlab.images import RUNTIME_IMAGE, XRAY_VERSION, ensure_images
from tests.support.tools import tools_bin_dir

HOSTS = [f"vpn-{i}" for i in range(1, 7)]


def ovpn(lab: FleetLab, env: dict[str, str], *argv: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = lab.in_controller([str(Path(".venv/bin/ovpn").resolve()), *argv], env=env, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"ovpn {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    prefetch_agent_wheels()
    figures: dict[int, list[float]] = {}
    with lab_lock():
        engine = start_engine()
        lab = None
        try:
            images = ensure_images(engine, tools_bin_dir() / "xray")
            with tempfile.TemporaryDirectory() as tmp:
                lab = start_lab(engine, HOSTS, Path(tmp), images)
                for count in (1, len(HOSTS)):
                    env = {**os.environ, "OVPN_DATA_DIR": f"{tmp}/state-{count}",
                           "PATH": f"{os.environ['PATH']}:{tools_bin_dir()}"}  # fmt: skip
                    for name in HOSTS[:count]:
                        ovpn(lab, env, "server", "add", "--name", name, "--role", "vpn", "--host",
                             lab.hosts[name].address, "--ssh-user", "ovpn", "--ssh-identity", str(lab.key),
                             "--xray-version", XRAY_VERSION, "--image", f"ovpn-agent-base={RUNTIME_IMAGE}")  # fmt: skip
                    for name in HOSTS[:count]:
                        ovpn(lab, env, "server", "init", name, "--accept-new-host-key", "--pull", "never")
                    times = []
                    for run in range(runs):
                        elapsed, out = ovpn(
                            lab, env, "user", "add", "--username", f"u{count}x{run}", "--json"
                        )
                        results = [s["result"] for s in json.loads(out)["servers"]]
                        assert results == ["live"] * count, results
                        times.append(elapsed)
                    figures[count] = times
        finally:
            if lab is not None:
                stop_lab(lab)
            engine.stop()
    print(f"fleet lab, `ovpn user add` applied live (medians of {runs}; 2 cores shared by all hosts):")
    for count, times in figures.items():
        print(
            f"  {count} host(s): {statistics.median(times):5.2f} s  (min {min(times):.2f}, max {max(times):.2f})"
        )


if __name__ == "__main__":
    main()
