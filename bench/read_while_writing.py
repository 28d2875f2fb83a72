"""How long `ovpn server list` takes in a new process, alone and while another process holds the state's write lock
mid-transaction (the case where reads used to wait for the lock and then fail). Prints medians and their ratio.

Run from the repository root: .venv/bin/python -m bench.read_while_writing [--runs N]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OVPN = [sys.executable, "-m", "ovpn"]


def timed_list(env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([*OVPN, "server", "list", "--json"], env=env, capture_output=True, check=False)
    return time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OVPN_DATA_DIR": str(Path(tmp) / "state"), "OVPN_LOCK_TIMEOUT": "5"}
        for i in range(20):
            subprocess.run([*OVPN, "server", "add", "--name", f"vpn-{i}", "--role", "vpn", "--host", f"10.9.0.{i + 1}"],
                           env=env, capture_output=True, check=True)  # fmt: skip
        alone = [timed_list(env) for _ in range(args.runs)]
        writer = sqlite3.connect(Path(tmp) / "state" / "ovpn.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE servers SET updated_at = updated_at")
        try:
            beside = [timed_list(env) for _ in range(args.runs)]
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    for label, runs in (("alone", alone), ("beside a writer holding the lock", beside)):
        failed = sum(code != 0 for _, code in runs)
        print(f"server list, {label}: median {statistics.median(t for t, _ in runs) * 1000:.0f} ms "
              f"over {len(runs)} runs, {failed} failed")  # fmt: skip
    ratio = statistics.median(t for t, _ in beside) / statistics.median(t for t, _ in alone)
    print(f"ratio beside/alone: {ratio:.2f}")


if __name__ == "__main__":
    main()
