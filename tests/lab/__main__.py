"""Bring the lab up by hand, print how to use it, and tear it down on Enter or Ctrl-C.

    sudo .venv/bin/python -m tests.lab [--work DIR]

See docs/lab.md.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from tests.lab.topology import LAB_DIR, NAMES, SOCKS_PORTS, LabUnavailable, lab_session


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, help="keep state, bundles and logs here (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ovpn-lab-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with lab_session(work) as lab:
            client = lab.host("client").namespace
            print(f"lab up in {work} (range {lab.net.network}, blackholed in the root namespace)\n")
            for role, host in lab.net.hosts.items():
                print(f"  {role:9} {host.namespace:28} {', '.join(str(a) for a in host.addresses)}")
            print(
                "\nSOCKS ports in the client namespace: "
                + ", ".join(f"{c} :{p}" for c, p in SOCKS_PORTS.items())
            )
            print("names: " + ", ".join(NAMES))
            print("\ntry:")
            print(f"  ip netns exec {client} {sys.executable} {LAB_DIR / 'probe.py'} get \\")
            print(f"      --socks 127.0.0.1:10808 --cafile {lab.ca} https://www.foreign-news.test/")
            print(f"  tail -f {lab.requests_log}")
            print(f"  ls {work / 'logs'}   # every process's output")
            geodata = work / "geodata"
            print(
                f"  OVPN_PROXY_GEOSITE_PATH={geodata / 'geosite.dat'} OVPN_PROXY_GEOIP_PATH={geodata / 'geoip.dat'} \\"
            )
            print(
                f"      {sys.executable} -m ovpn --data-dir {lab.data_dir} route explain --server proxy-ru NAME_OR_IP"
            )
            print("\npress Enter (or Ctrl-C) to tear the lab down")
            with contextlib.suppress(KeyboardInterrupt, EOFError):
                input()
    except LabUnavailable as exc:
        print(f"lab unavailable: {exc}", file=sys.stderr)
        return 1
    print("lab removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
