"""`HostLab`: a private Docker engine, an internal network, a controller namespace and host containers.

Start order: lock, blackhole route for the subnet (before anything is created), engine, leftovers of a crashed run removed, network.
Teardown (also after a failure, and for a partial start): our containers by name, the network, the engine by PID,
the blackhole route if we added it. Each lab NAME has its own run directory, socket, data root, network and
container names; a lock file makes a second lab of the same NAME (another pytest process) wait its turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.hostlab.engine import NEVER_PULL, DockerEngine
from tests.hostlab.net import Blackhole, Controller, remove_default_route
from tests.support.procs import LabError, acquire_lock, release_lock
from tests.support.tools import tools_dir

# What a systemd host container needs (TEST-LAB.md; --privileged fails on this machine).
SYSTEMD_HOST_OPTIONS = (
    "--cgroupns", "private",
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
)  # fmt: skip


@dataclass
class LabHost:
    """A running host container: its name in the lab, container name, address on the lab network, init PID."""

    lab: HostLab
    name: str
    container: str
    address: str
    pid: int

    def exec(
        self,
        *argv: str,
        input: bytes | None = None,
        input_file: Path | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> str:
        """Run ARGV inside the container (`docker exec`, no network involved); returns stdout.

        INPUT (bytes) or INPUT_FILE (streamed, e.g. a `docker save` tarball for the inner engine) is its stdin.
        """
        proc = self.lab.engine.run(
            "exec",
            "-i",
            self.container,
            *argv,
            input=input,
            stdin_file=input_file,
            timeout=timeout,
            check=check,
        )
        return proc.stdout.decode(errors="replace")

    def authorize_key(self, user: str, public_key: str) -> None:
        """Append PUBLIC_KEY to USER's authorized_keys (the way a provider seeds root's key on a new server)."""
        script = (
            'home=$(getent passwd "$1" | cut -d: -f6); mkdir -p "$home/.ssh"; chmod 700 "$home/.ssh"; '
            'cat >> "$home/.ssh/authorized_keys"; chmod 600 "$home/.ssh/authorized_keys"; '
            'chown -R "$1:" "$home/.ssh"'
        )
        self.exec("sh", "-c", script, "authorize", user, input=(public_key.strip() + "\n").encode())

    def wait_for_boot(self, timeout: float = 90) -> str:
        """Wait until systemd has finished booting ('running' or 'degraded'); returns that state."""
        deadline = time.monotonic() + timeout
        state, error = "", ""
        while time.monotonic() < deadline:
            left = max(1, int(deadline - time.monotonic()))
            proc = self.lab.engine.run(
                "exec", self.container, "timeout", str(left), "systemctl", "is-system-running", "--wait",
                timeout=left + 15, check=False,
            )  # fmt: skip
            state = proc.stdout.decode(errors="replace").strip()
            error = proc.stderr.decode(errors="replace").strip()
            if state in {"running", "degraded"}:
                return state
            if state and state not in {"offline", "initializing", "starting"}:
                break  # e.g. "maintenance": waiting longer will not help
            time.sleep(0.3)  # systemd is not PID 1 yet, or its bus is not up
        raise LabError(f"{self.name}: systemd did not finish booting ({state or error!r})")


@dataclass
class HostLab:
    """A lab named NAME on SUBNET. Use as a context manager; see tests/hostlab/__init__.py for an example."""

    name: str
    subnet: str
    run_root: Path = Path("/run")
    lock_timeout: float = 1800
    engine: DockerEngine = field(init=False)
    network: str = field(init=False)
    blackhole: Blackhole = field(init=False)
    controller: Controller | None = field(init=False, default=None)
    hosts: dict[str, LabHost] = field(init=False, default_factory=dict)
    _containers: list[str] = field(init=False, default_factory=list)
    _lock: IO[str] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.run_dir = self.run_root / f"ovpn-hostlab-{self.name}"
        self.engine = DockerEngine(tools_dir() / "hostlab" / f"engine-{self.name}", self.run_dir)
        self.network = f"hostlab-{self.name}"
        self.blackhole = Blackhole(self.subnet)

    @property
    def prefix(self) -> str:
        return f"hostlab-{self.name}-"

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> HostLab:
        try:
            self._acquire_lock()
            self.blackhole.add()
            self.engine.start()
            self.engine.remove_containers(self.engine.containers_named(self.prefix))
            self.engine.create_internal_network(self.network, self.subnet)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove what this lab started, in reverse order; every step runs even if an earlier one failed."""
        errors: list[str] = []
        steps = (
            ("containers", lambda: self.engine.remove_containers(self._containers)),
            ("network", lambda: self.engine.run("network", "rm", self.network, check=False, timeout=60)),
            ("engine", self.engine.stop),
            ("blackhole route", self.blackhole.remove),
            ("lock", self._release_lock),
        )
        for what, step in steps:
            try:
                step()
            except Exception as error:
                errors.append(f"{what}: {error}")
        self._containers.clear()
        self.hosts.clear()
        self.controller = None
        if errors:
            raise LabError("teardown incomplete: " + "; ".join(errors))

    def __enter__(self) -> HostLab:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _acquire_lock(self) -> None:
        self._lock = acquire_lock(
            self.run_root / f"ovpn-hostlab-{self.name}.lock",
            timeout=self.lock_timeout,
            busy=f"another lab named {self.name!r} is still running after {self.lock_timeout} s",
        )

    def _release_lock(self) -> None:
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None

    # --- containers ------------------------------------------------------------------------------------------
    def start_container(self, name: str, image: str, *options: str, command: tuple[str, ...] = ()) -> LabHost:
        """Run IMAGE as container `hostlab-NAME-<name>` on the lab network (never pulled, no DNS servers).

        Its default route, if Docker added one, is removed: lab namespaces have link routes only.
        """
        container = self.prefix + name
        self._containers.append(container)
        self.engine.run(
            "run", "-d", *NEVER_PULL, "--name", container, "--hostname", name,
            "--network", self.network, "--dns", "127.0.0.1",
            *options, image, *command,
            timeout=120,
        )  # fmt: skip
        info = self.engine.inspect(container)
        state = info.get("State")
        settings = info.get("NetworkSettings")
        if not isinstance(state, dict) or not isinstance(settings, dict):
            raise LabError(f"docker inspect {container}: no state")
        pid = int(state.get("Pid") or 0)
        networks = settings.get("Networks")
        address = ""
        if isinstance(networks, dict) and isinstance(networks.get(self.network), dict):
            address = str(networks[self.network].get("IPAddress") or "")
        if not pid or not address:
            raise LabError(f"{container} is not running on {self.network} (pid {pid}, address {address!r})")
        remove_default_route(pid)
        host = LabHost(self, name, container, address, pid)
        self.hosts[name] = host
        return host

    def start_systemd_host(self, name: str, image: str, *options: str) -> LabHost:
        """A host container booting systemd (an image from `images.build_systemd_host_image`)."""
        host = self.start_container(name, image, *SYSTEMD_HOST_OPTIONS, *options)
        host.wait_for_boot()
        return host

    def start_controller(self, image: str, name: str = "controller") -> Controller:
        """A helper container (`sleep infinity`, no capabilities) whose network namespace runs the clients."""
        helper = self.start_container(name, image, "--cap-drop", "ALL", command=("sleep", "infinity"))
        self.controller = Controller(helper.pid)
        return self.controller
