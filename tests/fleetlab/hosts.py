"""Start and stop the lab's host containers, the controller, and run ovpn inside the controller's netns."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.fleetlab.engine import RUN_DIR, Engine
from tests.fleetlab.images import HOST_IMAGE, RUNTIME_IMAGE
from tests.lab.topology import write_certificate
from tests.support.procs import held_lock, wait_until

NETWORK = "ovpn-fleetlab-net"
SUBNET = "10.214.1.0/24"
TEST_RANGE = "10.214.0.0/16"
PREFIX = "ovpn-fleetlab-"
# The lab's "internet": two sites that answer every request with the source address they saw. `ru-site` stands
# for a destination in the proxy preset (the fleet tests' geodata puts it in geoip:ru), `world-site` for a
# foreign one; both also serve the TLS 1.3 endpoint that the servers' REALITY target points at.
INTERNET = {"ru-site": "10.214.1.60", "world-site": "10.214.1.61"}
REALITY_SERVER_NAME = "www.lab.example"
REALITY_TARGET = f"{INTERNET['world-site']}:443"
INTERNET_SERVER = Path(__file__).resolve().parents[1] / "lab" / "internet_server.py"
CONTAINER_OPTIONS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass
class LabHost:
    name: str
    address: str
    container: str


@dataclass
class FleetLab:
    engine: Engine
    key: Path
    hosts: dict[str, LabHost] = field(default_factory=dict)
    controller_pid: int = 0
    created_route: bool = False

    def exec(
        self, host: str, *argv: str, input: bytes | None = None, timeout: float = 300, check: bool = True
    ) -> str:
        return self.engine.docker("exec", "-i", self.hosts[host].container, *argv, input=input, timeout=timeout,
                                  check=check)  # fmt: skip

    def in_controller(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 900,
                      input: bytes | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run a program of this machine inside the controller's network namespace (never the root one)."""
        return subprocess.run(
            ["nsenter", f"--net=/proc/{self.controller_pid}/ns/net", "--", *argv],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
            input=input.decode() if input is not None else None,
        )  # fmt: skip


def _route(action: str) -> None:
    subprocess.run(["ip", "route", action, "blackhole", TEST_RANGE], check=False, capture_output=True)


def remove_leftovers(engine: Engine) -> None:
    """Remove what a killed run left in the lab's private engine: containers and volumes named PREFIX*, and
    NETWORK. Only ever called under the lab lock, so nothing of another live lab can match."""
    containers = [
        n for n in engine.docker("ps", "-a", "--format", "{{.Names}}").split() if n.startswith(PREFIX)
    ]
    if containers:
        engine.docker("rm", "-f", "-v", *containers, timeout=300)
    volumes = [n for n in engine.docker("volume", "ls", "-q").split() if n.startswith(PREFIX)]
    if volumes:
        engine.docker("volume", "rm", *volumes)
    networks = [n for n in engine.docker("network", "ls", "--format", "{{.Name}}").split() if n == NETWORK]
    if networks:
        engine.docker("network", "rm", *networks)
    removed = containers + volumes + networks
    if removed:
        log.warning("removed the leftovers of an earlier fleet lab: %s", " ".join(removed))


def start_lab(engine: Engine, names: list[str], workdir: Path, service_images: Path) -> FleetLab:
    """Create the network, the controller and one host per name (10.214.1.11, .12, ...), after removing the
    leftovers of a killed run. If a step fails, what was created so far is removed again."""
    remove_leftovers(engine)
    _route("replace")
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    lab = FleetLab(engine, key, created_route=True)
    try:
        _create(lab, names, workdir, service_images)
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def _create(lab: FleetLab, names: list[str], workdir: Path, service_images: Path) -> None:
    engine = lab.engine
    engine.docker("network", "create", "--internal", "--subnet", SUBNET, NETWORK)
    controller = PREFIX + "controller"
    engine.docker("run", "-d", "--pull", "never", "--name", controller, "--network", NETWORK, "--ip", "10.214.1.2",
                  "--entrypoint", "sleep", HOST_IMAGE, "infinity")  # fmt: skip
    lab.controller_pid = int(engine.docker("inspect", "-f", "{{.State.Pid}}", controller).strip())
    public_key = lab.key.with_suffix(".pub").read_bytes()
    for index, name in enumerate(names):
        address = f"10.214.1.{11 + index}"
        container = PREFIX + name
        lab.hosts[name] = LabHost(name, address, container)
        engine.docker(
            "run", "-d", "--pull", "never", "--name", container, "--hostname", name, "--network", NETWORK,
            "--ip", address, *CONTAINER_OPTIONS, "--tmpfs", "/run", "--tmpfs", "/tmp",
            "-v", f"{container}-docker:/var/lib/docker", HOST_IMAGE,
        )  # fmt: skip
        lab.exec(name, "sh", "-c", "mkdir -p ~ovpn/.ssh && cat > ~ovpn/.ssh/authorized_keys && "
                 "chown -R ovpn: ~ovpn/.ssh && chmod 700 ~ovpn/.ssh", input=public_key)  # fmt: skip
    _start_internet(engine, workdir)
    images = service_images.read_bytes()
    # In parallel: on this 2-core machine three loads take about 40 s together and 90 s one after another.
    with ThreadPoolExecutor() as pool:
        for loaded in [pool.submit(_load_images, lab, name, images) for name in names]:
            loaded.result()


def _load_images(lab: FleetLab, name: str, images: bytes) -> None:
    dockerd_answers = partial(lab.engine.succeeds, "exec", lab.hosts[name].container, "docker", "info")
    wait_until(dockerd_answers, timeout=90, what=f"dockerd on {name}", interval=0.3)
    lab.exec(name, "docker", "load", "-q", input=images, timeout=600)


def _start_internet(engine: Engine, workdir: Path) -> None:
    site_dir = workdir / "internet"
    site_dir.mkdir()
    write_certificate(site_dir, [REALITY_SERVER_NAME], list(INTERNET.values()))
    for site, address in INTERNET.items():
        engine.docker(
            "run", "-d", "--pull", "never", "--name", PREFIX + site, "--network", NETWORK, "--ip", address,
            "-v", f"{site_dir}:/site:ro", "-v", f"{INTERNET_SERVER}:/usr/local/bin/internet_server.py:ro",
            RUNTIME_IMAGE, "python3", "/usr/local/bin/internet_server.py", "--log", "/tmp/requests.jsonl",
            "--ready", "/tmp/ready", "--cert", "/site/cert.pem", "--key", "/site/key.pem",
            "--http", f"{address}:80", "--tls-target", f"{address}:443",
        )  # fmt: skip
    for site in INTERNET:
        site_ready = partial(engine.succeeds, "exec", PREFIX + site, "test", "-s", "/tmp/ready")
        wait_until(site_ready, timeout=60, what=site, interval=0.3)


def stop_lab(lab: FleetLab) -> None:
    """Remove exactly what start_lab created, by name."""
    names = [h.container for h in lab.hosts.values()] + [PREFIX + "controller"]
    names += [PREFIX + site for site in INTERNET]
    lab.engine.docker("rm", "-f", "-v", *names, check=False, timeout=300)
    for host in lab.hosts.values():
        lab.engine.docker("volume", "rm", f"{host.container}-docker", check=False)
    lab.engine.docker("network", "rm", NETWORK, check=False)
    if lab.created_route:
        _route("del")


def inspect_host(lab: FleetLab, name: str) -> dict[str, object]:
    return json.loads(lab.engine.docker("inspect", lab.hosts[name].container))[0]  # type: ignore[no-any-return]


def lab_lock(timeout: float = 3600) -> contextlib.AbstractContextManager[None]:
    """One fleet lab per machine at a time: a second test session waits (bounded) for the first to finish."""
    return held_lock(
        RUN_DIR / "lab.lock", timeout=timeout, busy="another fleet lab has been running for too long"
    )
