"""The lab's network: namespaces on one bridge, inside one test range, with the network-rule safeguards.

Safeguards (TEST-LAB.md, "the network rule"):

* Before anything is created, the root namespace gets `blackhole <range>`, so a stray packet from the root
  namespace to a lab address is dropped instead of following the default route out. It is shared by concurrent
  labs through a small PID registry under /run and removed by the last lab that leaves (only if a lab added it).
* No address is ever added to the root namespace. Every host namespace has one veth into a bridge that lives in a
  bridge namespace of its own, an address in the test range and only the link route that comes with it: there
  is no default route anywhere, so nothing in a namespace can reach beyond the lab.
* Names resolve only inside the lab: `/etc/netns/NAME/hosts` (bind-mounted over /etc/hosts by `ip netns exec`)
  and a `resolv.conf` that points at the namespace's own loopback, so a missing name fails instead of asking a
  real resolver.
* Teardown deletes only the namespaces, /etc/netns entries and routes this lab created, by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.procs import run
from tests.support.procs import LabError, pid_alive

DEFAULT_RANGE = "10.219.0.0/16"
REGISTRY_DIR = Path("/run/ovpn-lab")
NETNS_ETC = Path("/etc/netns")


def lab_range() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(os.environ.get("OVPN_LAB_RANGE", DEFAULT_RANGE))


@contextlib.contextmanager
def _registry(network: ipaddress.IPv4Network) -> Iterator[tuple[list[str], Path]]:
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    path = REGISTRY_DIR / f"{network.network_address}_{network.prefixlen}"
    with (REGISTRY_DIR / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = path.read_text().split() if path.exists() else []
        yield lines, path


def _blackhole_present(network: ipaddress.IPv4Network) -> bool:
    return "blackhole" in run(["ip", "route", "show", "exact", str(network)])


def acquire_blackhole(network: ipaddress.IPv4Network) -> None:
    """Make sure `blackhole <range>` is in the root namespace for as long as this process runs a lab."""
    with _registry(network) as (lines, path):
        # First line: "added" if a lab added the route, "found" if it was there before any lab.
        origin = lines[0] if lines and lines[0] in ("added", "found") else "found"
        users = [p for p in lines[1:] if p.isdigit() and pid_alive(int(p)) and int(p) != os.getpid()]
        if not _blackhole_present(network):
            run(["ip", "route", "replace", "blackhole", str(network)])
            origin = "added"
        path.write_text("\n".join([origin, *users, str(os.getpid())]) + "\n")
    if not _blackhole_present(network):
        raise LabError(f"the root namespace has no blackhole route for {network}")


def release_blackhole(network: ipaddress.IPv4Network) -> None:
    """Drop this process from the registry; the last lab out removes the route if a lab added it."""
    with _registry(network) as (lines, path):
        origin = lines[0] if lines and lines[0] in ("added", "found") else "found"
        users = [p for p in lines[1:] if p.isdigit() and pid_alive(int(p)) and int(p) != os.getpid()]
        if users:
            path.write_text("\n".join([origin, *users]) + "\n")
            return
        path.unlink(missing_ok=True)
        if origin == "added" and _blackhole_present(network):
            run(["ip", "route", "del", "blackhole", str(network)], check=False)


@dataclass
class Host:
    """One namespace with one interface (eth0) on the lab bridge."""

    role: str
    namespace: str
    addresses: list[ipaddress.IPv4Address]
    hosts: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return str(self.addresses[0])


class LabNetwork:
    """Creates and removes the lab's namespaces; every name it creates carries a per-run tag."""

    def __init__(self, network: ipaddress.IPv4Network | None = None) -> None:
        self.network = network or lab_range()
        if not self.network.is_private or self.network.prefixlen > 24:
            raise LabError(f"lab range {self.network} must be a private /24 or larger")
        self.tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.bridge_ns = f"ovpnlab-{self.tag}-br"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._etc_dirs: list[Path] = []
        self._etc_root_created = False
        self._blackhole = False

    def address(self, offset: int) -> ipaddress.IPv4Address:
        address = self.network.network_address + offset
        if address not in self.network or address in (
            self.network.network_address,
            self.network.broadcast_address,
        ):
            raise LabError(f"offset {offset} is outside {self.network}")
        return address

    # --- building -------------------------------------------------------------------------------------------

    def up(self) -> None:
        acquire_blackhole(self.network)
        self._blackhole = True
        self._add_namespace(self.bridge_ns)
        run(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])

    def add_host(self, role: str, offsets: list[int]) -> Host:
        namespace = f"ovpnlab-{self.tag}-{role}"
        host = Host(role, namespace, [self.address(o) for o in offsets])
        index = len(self.hosts)
        peer = f"p{index}-{self.tag}"[:15]
        self._add_namespace(namespace)
        # Created directly inside the two namespaces: the root namespace never holds a lab interface.
        run(
            [
                "ip",
                "link",
                "add",
                "eth0",
                "netns",
                namespace,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                self.bridge_ns,
            ]
        )
        run(["ip", "-n", self.bridge_ns, "link", "set", peer, "master", "br0", "up"])
        for address in host.addresses:
            run(["ip", "-n", namespace, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0"])
        run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        run(["ip", "-n", namespace, "link", "set", "eth0", "up"])
        self.hosts[role] = host
        return host

    def write_names(
        self, names: Mapping[str, str], per_host: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        """Write every namespace's hosts file: the shared lab names plus that host's own extra names."""
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir(parents=True)
            self._etc_root_created = True
        for role, host in self.hosts.items():
            directory = NETNS_ETC / host.namespace
            if directory not in self._etc_dirs:
                directory.mkdir(exist_ok=True)
                self._etc_dirs.append(directory)
            host.hosts = {**names, **((per_host or {}).get(role, {}))}
            lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in sorted(host.hosts.items()))]
            (directory / "hosts").write_text("\n".join(lines) + "\n")
            # Loopback only: a name missing from the hosts file fails here instead of reaching any resolver.
            (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def check_isolation(self) -> None:
        """Every lab namespace has no default route and only link routes inside the lab range."""
        for host in self.hosts.values():
            routes = run(["ip", "-n", host.namespace, "-4", "route", "show"]).splitlines()
            for line in routes:
                destination = line.split()[0]
                if (
                    destination == "default"
                    or ipaddress.IPv4Network(destination, strict=False) != self.network
                ):
                    raise LabError(f"unexpected route in {host.namespace}: {line}")
        if not _blackhole_present(self.network):
            raise LabError(f"the root namespace lost its blackhole route for {self.network}")

    # --- faults ---------------------------------------------------------------------------------------------

    def cut_off(self, role: str) -> None:
        """Silently drop everything a host sends: its link route becomes a blackhole inside its own namespace.

        Packets still arrive, nothing answers (not even a SYN-ACK or a RST), so peers' connects hang: the
        behaviour of a host behind a dropping firewall. Only the host's own namespace is touched.
        """
        host = self.hosts[role]
        run(["ip", "-n", host.namespace, "route", "replace", "blackhole", str(self.network)])

    def reconnect(self, role: str) -> None:
        host = self.hosts[role]
        run(
            [
                "ip",
                "-n",
                host.namespace,
                "route",
                "replace",
                str(self.network),
                "dev",
                "eth0",
                "src",
                host.address,
                "scope",
                "link",
            ]
        )

    # --- teardown -------------------------------------------------------------------------------------------

    def _add_namespace(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def down(self) -> None:
        errors: list[str] = []
        for name in reversed(self._namespaces):
            try:
                run(["ip", "netns", "del", name])
            except LabError as exc:
                errors.append(str(exc))
        self._namespaces.clear()
        for directory in self._etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._etc_dirs.clear()
        if self._etc_root_created:
            with contextlib.suppress(OSError):
                NETNS_ETC.rmdir()  # only if empty: another lab may be using it
        if self._blackhole:
            release_blackhole(self.network)
            self._blackhole = False
        if errors:
            raise LabError("; ".join(errors))
