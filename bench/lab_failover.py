"""Failover figures in the namespace lab: a backend's Xray dies, or the backend goes silent (blackhole).

For each fault, repeated runs: new connections through the proxy every 50 ms (a client gives up after 5 s),
the fault on the active backend (vpn-1) once traffic flows, then at least 8 s more of new connections; then
vpn-1 returns and the time until HAProxy reports it up again is taken. Prints every run and the medians.

Goals (issue 4): process death - zero failed new connections and recovery under 1 s; blackhole - full
recovery under 3 s. "Recovered" means every later new connection succeeds with its first byte within 500 ms.

Run as root from the repository root (tools from .ci/install-tools):
    .venv/bin/python -m bench.lab_failover [--runs 5] [--topology active-backup|active-active]
        [--haproxy-config FILE]   # try another haproxy.cfg instead of the rendered one (experiments)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.lab.measure import failover, median
from tests.lab.topology import Lab, lab_session
from tests.support.procs import wait_until

INTERVAL = 0.05
AFTER_FAULT_S = 8.0
CLIENT_TIMEOUT_S = 5.0


def one_run(lab: Lab, fault: str, index: int) -> dict[str, Any]:
    lab.restore()
    count = int((1.0 + AFTER_FAULT_S) / INTERVAL)
    loop = lab.start_loop(
        f"bench-{fault}-{index}",
        "alice@proxy-ru",
        ["http://www.foreign-news.test/"],
        count=count,
        interval=INTERVAL,
        timeout=CLIENT_TIMEOUT_S,
    )
    loop.wait_for_successes(10)
    event = lab.kill_server("vpn-1") if fault == "process-death" else lab.cut_off("vpn-1")
    outcome = failover(loop.finish(), event)
    lab.reconnect("vpn-1")
    lab.ensure_server("vpn-1", "post")
    back = time.monotonic()
    wait_until(lambda: lab.pool_states().get("vpn-1") == "UP", timeout=30, interval=0.1, what="vpn-1 back up")
    return {**outcome.as_dict(), "rejoin_s": time.monotonic() - back}


def fmt(value: float | None, unit: str = "") -> str:
    return "never" if value is None else f"{value:.2f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--faults", default="process-death,blackhole")
    parser.add_argument("--topology", choices=["active-backup", "active-active"], default="active-backup")
    parser.add_argument("--haproxy-config", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ovpn-bench-lab-") as work, lab_session(Path(work)) as lab:
        if args.topology == "active-active":
            lab.set_priority("vpn-2", 100)
        if args.haproxy_config:
            lab.start_haproxy(args.haproxy_config)
        print(
            f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start (shared with other work)"
        )
        print(f"topology: {args.topology}; haproxy.cfg: {args.haproxy_config or 'as rendered by ovpn'}")
        print(f"new connection every {INTERVAL * 1000:.0f} ms, client timeout {CLIENT_TIMEOUT_S:.0f} s\n")
        for fault in args.faults.split(","):
            runs = []
            for index in range(args.runs):
                result = one_run(lab, fault, index)
                runs.append(result)
                print(
                    f"{fault:13} run {index + 1}: failed {result['failed']:3}/{result['attempts']}, "
                    f"slow {result['slow']:3}, in-flight broken {result['broken_in_flight']}, "
                    f"recovery {fmt(result['recovery_s'], ' s')}, max setup {result['max_setup_ms']:.0f} ms, "
                    f"rejoin {result['rejoin_s']:.2f} s",
                    flush=True,
                )
            # A run that never recovered within its window counts as infinitely slow.
            recovery_or_inf = median([math.inf if r["recovery_s"] is None else r["recovery_s"] for r in runs])
            recovery = None if math.isinf(recovery_or_inf) else recovery_or_inf
            print(
                f"{fault:13} MEDIAN of {len(runs)}: failed {median([r['failed'] for r in runs]):.0f}, "
                f"slow {median([r['slow'] for r in runs]):.0f}, recovery {fmt(recovery, ' s')}, "
                f"max setup {median([r['max_setup_ms'] for r in runs]):.0f} ms, "
                f"rejoin {median([r['rejoin_s'] for r in runs]):.2f} s\n",
                flush=True,
            )
        print(f"load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
