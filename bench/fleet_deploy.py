"""`deploy --all` of 6 hosts, sequential (--jobs 1) vs parallel (--jobs 6), and a no-change redeploy of one host.

Runs against the fleet lab (containers with sshd + Docker; needs root). Prints medians over repeated runs.
Run from the repository root: .venv/bin/python -m bench.fleet_deploy [--runs N]
"""

from __future__ import annotations

import argparse
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


def ovpn(lab: FleetLab, env: dict[str, str], *argv: str) -> float:
    started = time.perf_counter()
    result = lab.in_controller([str(Path(".venv/bin/ovpn").resolve()), *argv], env=env, timeout=1800)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"ovpn {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    prefetch_agent_wheels()  # ovpn runs in the lab controller's namespace, which has no route to the index
    with lab_lock():
        run_bench(runs)


def run_bench(runs: int) -> None:
    engine = start_engine()
    lab = None
    try:
        images = ensure_images(engine, tools_bin_dir() / "xray")
        with tempfile.TemporaryDirectory() as tmp:
            lab = start_lab(engine, HOSTS, Path(tmp), images)
            env = {
                **os.environ,
                "OVPN_DATA_DIR": f"{tmp}/state",
                "PATH": f"{os.environ['PATH']}:{tools_bin_dir()}",
            }
            for name in HOSTS:
                ovpn(lab, env, "server", "add", "--name", name, "--role", "vpn", "--host", lab.hosts[name].address,
                     "--ssh-user", "ovpn", "--ssh-identity", str(lab.key), "--xray-version", XRAY_VERSION,
                     "--image", f"ovpn-agent-base={RUNTIME_IMAGE}")  # fmt: skip
            ovpn(lab, env, "user", "add", "--username", "alice")
            first = [
                ovpn(lab, env, "server", "init", n, "--accept-new-host-key", "--pull", "never") for n in HOSTS
            ]
            sequential = [ovpn(lab, env, "deploy", "--all", "--force", "--jobs", "1", "--pull", "never")
                          for _ in range(runs)]  # fmt: skip
            parallel = [ovpn(lab, env, "deploy", "--all", "--force", "--jobs", "6", "--pull", "never")
                        for _ in range(runs)]  # fmt: skip
            unchanged = [ovpn(lab, env, "deploy", "vpn-1", "--pull", "never") for _ in range(max(runs, 5))]
    finally:
        if lab is not None:
            stop_lab(lab)
        engine.stop()
    seq, par = statistics.median(sequential), statistics.median(parallel)
    print(f"fleet lab, {len(HOSTS)} vpn hosts, medians ({runs} runs; 2 cores shared by all hosts):")
    print(f"  first deploy (server init), one host:  {statistics.median(first):6.1f} s")
    print(f"  deploy --all --jobs 1 (sequential):    {seq:6.1f} s")
    print(f"  deploy --all --jobs 6 (parallel):      {par:6.1f} s  ({seq / par:.2f}x faster)")
    print(f"  no-change redeploy of one host:        {statistics.median(unchanged):6.2f} s")


if __name__ == "__main__":
    main()
