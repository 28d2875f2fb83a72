"""A private Docker engine: started by the test, on its own socket, never forwarding or NATing anything.

`dockerd` runs with `--iptables=false --ip-forward=false --bridge=none` (TEST-LAB.md, the network rule), its data
root under the tools directory (so imported images survive between runs) and its exec root, socket and PID file
under a run directory of its own, so engines of other tests never collide with it. It is stopped by the PID this
process started (or, after a crash, by the PID in its own PID file once the command line proves it is ours).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.procs import LabError, pid_alive, pid_cmdline, stop_pid, wait_until

# Options every lab container needs so that nothing is fetched from a registry.
NEVER_PULL = ("--pull", "never")


class DockerEngine:
    """One `dockerd` of our own. Use `start()` / `stop()`, or `with DockerEngine(...) as engine:`."""

    def __init__(self, data_root: Path, run_dir: Path) -> None:
        self.data_root = data_root
        self.run_dir = run_dir
        self.socket = run_dir / "docker.sock"
        self.exec_root = run_dir / "exec"
        self.pidfile = run_dir / "docker.pid"
        self.log = run_dir / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> DockerEngine:
        for tool in ("dockerd", "containerd", "docker"):
            if shutil.which(tool) is None:
                raise LabError(f"{tool} is not installed (apt-get install docker.io)")
        self._stop_stale()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", f"unix://{self.socket}",
            "--pidfile", str(self.pidfile),
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        process = self._process

        def answers() -> bool:
            if process.poll() is not None:
                raise LabError(f"dockerd exited with {process.returncode}: {self.log_tail()}")
            return self.socket.exists() and self.run("version", check=False, timeout=10).returncode == 0

        try:
            wait_until(answers, timeout=timeout, what="dockerd", interval=0.2)
        except LabError as error:
            self.stop()
            raise LabError(f"{error}: {self.log_tail()}") from None
        return self

    def stop(self) -> None:
        """Stop the engine this object started (SIGTERM, then SIGKILL), and its managed containerd."""
        if self._process is not None:
            stop_pid(self._process.pid, timeout=30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        self._stop_containerd()

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _stop_stale(self) -> None:
        """A dockerd left running on our socket by a crashed run (checked by its command line) is stopped."""
        _stop_if_ours(self.pidfile, "dockerd", f"unix://{self.socket}", timeout=30)
        self._stop_containerd()

    def _stop_containerd(self) -> None:
        pidfile = self.exec_root / "containerd" / "containerd.pid"
        _stop_if_ours(pidfile, "containerd", str(self.exec_root), timeout=15)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- the docker CLI against this engine ------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment for a `docker` command aimed at this engine (legacy builder: no BuildKit pulls)."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 300,
        check: bool = True,
        stdin_file: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """`docker ARGS` against this engine. With check, a failure raises LabError with docker's message."""
        argv = ["docker", *args]
        if stdin_file is not None:
            with stdin_file.open("rb") as handle:
                proc = subprocess.run(
                    argv, stdin=handle, capture_output=True, timeout=timeout, env=self.env()
                )
        else:
            proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            raise LabError(
                f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        return proc

    def text(self, *args: str, timeout: float = 300) -> str:
        return self.run(*args, timeout=timeout).stdout.decode(errors="replace").strip()

    def inspect(self, name: str) -> dict[str, object]:
        found = json.loads(self.text("inspect", name))
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            raise LabError(f"docker inspect {name}: unexpected output")
        return found[0]

    # --- images ----------------------------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False, timeout=30).returncode == 0

    def import_rootfs(self, tarball: Path, ref: str) -> str:
        """`docker import` a root file system tarball as REF, unless REF is already there. Returns REF."""
        if not self.image_exists(ref):
            self.run("import", "-", ref, stdin_file=tarball, timeout=600)
        return ref

    def build_image(
        self, ref: str, dockerfile: str, files: Mapping[str, bytes] | None = None, base: str | None = None
    ) -> str:
        """`docker build` REF from DOCKERFILE text and FILES (name -> content) in a fresh context.

        The legacy builder pulls a missing FROM image, so BASE must already exist: it is checked first and a
        missing one is an error, never a pull. RUN steps get no network (`--network none`).
        """
        if base is not None and not self.image_exists(base):
            raise LabError(f"base image {base} is not in the lab engine (it is never pulled)")
        with tempfile.TemporaryDirectory(prefix="hostlab-build-") as context:
            root = Path(context)
            (root / "Dockerfile").write_text(dockerfile)
            for name, content in (files or {}).items():
                (root / name).write_bytes(content)
            self.run("build", "--pull=false", "--network", "none", "-q", "-t", ref, str(root), timeout=600)
        return ref

    # --- networks and containers -----------------------------------------------------------------------------
    def create_internal_network(self, name: str, subnet: str) -> str:
        """An internal bridge network whose bridge has no IPv4 address in the root namespace.

        `--internal` plus `inhibit_ipv4`: the root namespace gets no address and no route into the subnet, so
        nothing there can talk to the containers by mistake; only the containers (and namespaces entered with
        nsenter) reach each other.
        """
        self.run("network", "rm", name, check=False, timeout=60)
        self.run(
            "network", "create", "--internal",
            "-o", "com.docker.network.bridge.inhibit_ipv4=true",
            "--subnet", subnet, name,
            timeout=60,
        )  # fmt: skip
        return name

    def remove_containers(self, names: Sequence[str]) -> None:
        if names:
            self.run("rm", "-f", *names, check=False, timeout=120)

    def containers_named(self, prefix: str) -> list[str]:
        out = self.text("ps", "-a", "--filter", f"name=^{prefix}", "--format", "{{.Names}}", timeout=60)
        return [line for line in out.splitlines() if line.startswith(prefix)]


def _stop_if_ours(pidfile: Path, program: str, marker: str, *, timeout: float) -> None:
    """Stop the PID in PIDFILE if it still runs PROGRAM with MARKER (our socket or exec root) on its command line."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    cmdline = pid_cmdline(pid)
    if pid_alive(pid) and cmdline and cmdline[0].endswith(program) and marker in " ".join(cmdline):
        stop_pid(pid, timeout=timeout)
