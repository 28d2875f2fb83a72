"""`ovpn --help` start-up time, median over repeated runs (target: under 0.3 s).

Run: .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 21


def median_seconds(argv: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    entry = median_seconds([str(ROOT / ".venv/bin/ovpn"), "--help"])
    launcher = median_seconds([str(ROOT / "ovpn"), "--help"])
    server_list = median_seconds([str(ROOT / ".venv/bin/ovpn"), "server", "--help"])
    print(f"median of {RUNS} runs (target 300 ms):")
    print(f"  .venv/bin/ovpn --help   {entry * 1000:7.1f} ms  ({entry / 0.3:.2f} of target)")
    print(f"  ./ovpn --help (launcher) {launcher * 1000:7.1f} ms  ({launcher / 0.3:.2f} of target)")
    print(f"  ovpn server --help      {server_list * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
