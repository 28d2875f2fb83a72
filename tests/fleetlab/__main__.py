"""Bring the fleet lab up by hand (the fleet tests' three hosts and an operator data dir that knows them), print
how to reach it, and tear it down on Enter, Ctrl-C or SIGTERM.

    sudo .venv/bin/python -m tests.fleetlab [--work DIR]
    sudo .venv/bin/python -m tests.fleetlab --check

See docs/lab.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from tests.conftest import prefetch_agent_wheels
from tests.fleetlab.engine import RUN_DIR
from tests.fleetlab.geodata import fleet_geodata
from tests.fleetlab.hosts import INTERNET, FleetLab
from tests.fleetlab.operator import OVPN, Operator, fleet_server_adds, lab_operator
from tests.fleetlab.session import FLEET_HOSTS, locked_engine, missing_requirement, running_lab
from tests.support.procs import LabError
from tests.support.tools import tools_bin_dir

SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]  # fmt: skip
# What `ovpn` needs from the operator's environment in the lab (the rest is the caller's own shell).
OPERATOR_ENV = ("OVPN_DATA_DIR", "OVPN_PROXY_GEOSITE_PATH", "OVPN_PROXY_GEOIP_PATH", "OVPN_AGENT_WHEEL_CACHE")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fleetlab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work", type=Path, help="an empty or new dir for the SSH key and the operator's data dir "
                        "(default: a new temp dir, kept afterwards)")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="do not wait: start the lab, check that the data "
                        "dir lists the servers and that SSH answers on every host, tear down; exit 0 if all did")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = missing_requirement()
    if reason is not None:
        print(f"fleet lab unavailable: {reason}", file=sys.stderr)
        return 1
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        print(f"{args.work} is not empty", file=sys.stderr)
        print("hint: name a new or empty directory, or leave --work out for a temp dir", file=sys.stderr)
        return 2
    _stop_on_signals()
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="ovpn-fleetlab-") as work:
                return _run(Path(work), check=True)
        return _run(args.work or Path(tempfile.mkdtemp(prefix="ovpn-fleetlab-")), check=False)
    except (LabError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"fleet lab failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the lab was removed", file=sys.stderr)
        return 130


def _run(work: Path, check: bool) -> int:
    if not check:
        # ovpn renders the agent's wheels into every bundle, and the controller's namespace has no package index.
        prefetch_agent_wheels()
    (work / "lab").mkdir(parents=True)
    (work / "operator").mkdir()
    with locked_engine() as engine, running_lab(engine, work / "lab", tools_bin_dir() / "xray") as lab:
        operator = lab_operator(lab, work / "operator", fleet_geodata())
        for add in fleet_server_adds(lab):
            _ovpn(operator, *add)
        if check:
            return _check(lab, operator)
        _describe(lab, operator, work)
        print("\npress Enter (or Ctrl-C) to tear the lab down", flush=True)
        with contextlib.suppress(KeyboardInterrupt, EOFError):
            input()
        _ignore_signals()
    print(f"lab removed; {work} is kept")
    return 0


def _ovpn(operator: Operator, *argv: str) -> str:
    result = operator.run(*argv)
    if result.returncode != 0:
        raise LabError(f"ovpn {argv[0]} {argv[1]} failed: {result.stderr.strip()}")
    return result.stdout


def _ssh(lab: FleetLab, name: str, *command: str) -> subprocess.CompletedProcess[str]:
    address = lab.hosts[name].address
    return lab.in_controller(
        ["ssh", *SSH_OPTIONS, "-i", str(lab.key), f"ovpn@{address}", *command], timeout=60
    )


def _check(lab: FleetLab, operator: Operator) -> int:
    listed = sorted(server["name"] for server in json.loads(_ovpn(operator, "server", "list", "--json")))
    print(f"data dir lists: {', '.join(listed)}")
    failed = listed != sorted(FLEET_HOSTS)
    for name in FLEET_HOSTS:
        result = _ssh(lab, name, "sudo", "-n", "docker", "compose", "version", "--short")
        answer = result.stdout.strip() if result.returncode == 0 else f"FAILED: {result.stderr.strip()}"
        print(f"{name}: ssh ovpn@{lab.hosts[name].address}, sudo docker compose {answer}")
        failed = failed or result.returncode != 0
    return 1 if failed else 0


def _describe(lab: FleetLab, operator: Operator, work: Path) -> None:
    netns = f"--net=/proc/{lab.controller_pid}/ns/net"
    print(f"fleet lab up; work dir {work}\n")
    for host in lab.hosts.values():
        print(f"  {host.name:9} {host.address:12} container {host.container}")
    print("  sites     " + ", ".join(f"{site} {address}" for site, address in INTERNET.items()))
    print(f"\nSSH: user ovpn (sudo without password), key {lab.key}")
    print(f"data dir {operator.data_dir} has the three servers (no user yet)")
    env = [f"{key}={shlex.quote(operator.env[key])}" for key in OPERATOR_ENV if key in operator.env]
    env.append(f"PYTHONPATH={shlex.quote(str(OVPN.parents[2] / 'src'))}")
    env.append(f'PATH="$PATH":{shlex.quote(str(tools_bin_dir()))}')
    print(
        "\nin a root shell, run ovpn and ssh inside the controller's network namespace (never the root one):\n"
    )
    print(f'  ovpn() {{ nsenter {netns} -- env {" ".join(env)} {shlex.quote(str(OVPN))} "$@"; }}')
    ssh = f"ssh {' '.join(SSH_OPTIONS)} -i {shlex.quote(str(lab.key))}"
    print(f'  lab_ssh() {{ host=$1; shift; nsenter {netns} -- {ssh} "ovpn@$host" "$@"; }}')
    print("  ovpn server list")
    print("  ovpn user add --username alice && ovpn server init vpn-de --accept-new-host-key --pull never")
    print(f"  lab_ssh {lab.hosts['vpn-de'].address} sudo docker ps")
    print(f"  docker -H unix://{RUN_DIR / 'docker.sock'} exec -it {lab.hosts['vpn-de'].container} bash")
    print("\nthe servers were added with:")
    for add in fleet_server_adds(lab):
        print("  ovpn " + shlex.join(add))


def _stop_on_signals() -> None:
    """SIGTERM ends the wait as Ctrl-C does; once the wait is over both are ignored, so teardown completes."""

    def stop(signum: int, frame: FrameType | None) -> None:
        _ignore_signals()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
