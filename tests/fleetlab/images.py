"""Local images for the lab, from debootstrap and the Go-built Xray only (nothing is pulled from a registry).

* the host image: Debian 12 with sshd, sudo, Docker Engine and the Compose v2 plugin, plus an init script that
  starts sshd and an inner Docker engine;
* service images loaded into each host's inner engine: a Debian runtime with Python and HAProxy (the agent's
  base image and the HAProxy image) and an Xray image built FROM scratch around the Go-built binary, running as
  the same non-root user as the official image;
* the monitoring images: Debian's own Prometheus, Alertmanager and node exporter, and cAdvisor built from its Go
  library (`tests/tools/cadvisor`, by .ci/install-tools), each with the binary as entrypoint so that the
  rendered `command:` flags apply unchanged; and a clearly named stand-in for Grafana, which is neither
  packaged nor built here: a small HTTP server on the runtime image (`tests/fleetlab/standin.py`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.fleetlab.engine import Engine
from tests.support.tools import tools_bin_dir, tools_dir

XRAY_VERSION = "26.3.27"  # what the Go module proxy serves here; the image tag says so honestly
HOST_IMAGE = "ovpn-fleetlab/host:6"
RUNTIME_IMAGE = "ovpn-fleetlab/runtime:bookworm-1"
HAPROXY_IMAGE = "ovpn-fleetlab/haproxy:2.6"
XRAY_IMAGE = f"ghcr.io/xtls/xray-core:{XRAY_VERSION}"
MONITORING_BASE_IMAGE = "ovpn-fleetlab/monitoring-base:bookworm-2"
PROMETHEUS_IMAGE = "ovpn-fleetlab/prometheus:bookworm-2"
ALERTMANAGER_IMAGE = "ovpn-fleetlab/alertmanager:bookworm-2"
NODE_EXPORTER_IMAGE = "ovpn-fleetlab/node-exporter:bookworm-2"
GRAFANA_STANDIN_IMAGE = "ovpn-fleetlab/grafana-standin:2"
CADVISOR_LIBRARY_VERSION = "0.49.1"  # tests/tools/cadvisor/go.mod
CADVISOR_BINARY = tools_bin_dir() / "cadvisor-lab"


def _cadvisor_digest() -> str:
    """The built binary's digest, which the image tag carries so that a rebuilt binary is a new image
    ("missing" until .ci/install-tools has built it; ensure_images then says so)."""
    if not CADVISOR_BINARY.is_file():
        return "missing"
    return hashlib.sha256(CADVISOR_BINARY.read_bytes()).hexdigest()[:12]


CADVISOR_IMAGE = f"ovpn-fleetlab/cadvisor:{CADVISOR_LIBRARY_VERSION}-{_cadvisor_digest()}-setuid"
# `server add --image SERVICE=REF` for every monitoring service the lab can run (the bot is not built yet).
MONITORING_IMAGES = {
    "prometheus": PROMETHEUS_IMAGE,
    "alertmanager": ALERTMANAGER_IMAGE,
    "node-exporter": NODE_EXPORTER_IMAGE,
    "grafana": GRAFANA_STANDIN_IMAGE,
    "cadvisor": CADVISOR_IMAGE,
}
SERVICE_IMAGES = (RUNTIME_IMAGE, HAPROXY_IMAGE, XRAY_IMAGE, *MONITORING_IMAGES.values())
SAVED_SERVICE_IMAGES = f"service-images-6-{_cadvisor_digest()}.tar"

HOST_PACKAGES = "openssh-server,sudo,docker.io,iproute2,procps,ca-certificates,iptables"
RUNTIME_PACKAGES = "python3,python3-pip,haproxy,ca-certificates"
# GNU wget for the rendered healthchecks (`wget -q --spider URL`) and `wget -qO- URL`, as busybox wget in prom/*.
MONITORING_PACKAGES = "prometheus,prometheus-alertmanager,prometheus-node-exporter,wget,ca-certificates"
# image -> (binary, data directory owned by the image's user, as in the official images; "" for none)
_MONITORING_BINARIES = {
    PROMETHEUS_IMAGE: ("/usr/bin/prometheus", "/prometheus"),
    ALERTMANAGER_IMAGE: ("/usr/bin/prometheus-alertmanager", "/alertmanager"),
    NODE_EXPORTER_IMAGE: ("/usr/bin/prometheus-node-exporter", ""),
}

HOST_INIT = r"""#!/bin/sh
# Lab host init: fresh SSH host keys, cgroups writable for the inner engine, dockerd, then sshd in the foreground.
set -e
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null
for dir in /sys/fs/cgroup/*/; do
  name=$(basename "$dir")
  case "$name" in unified) continue ;; systemd) option="none,name=systemd" ;; *) option="$name" ;; esac
  umount "$dir" && mount -t cgroup -o "$option" cgroup "$dir"
done
mkdir -p /run/sshd /var/log
# Like a real server's engine: NAT and forwarding, but only inside this host's own network namespace, whose
# one interface is on the lab's internal network.
dockerd >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e
"""

SSHD_CONFIG = """PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
"""


def _run(argv: list[str], timeout: float = 1800) -> None:
    subprocess.run(argv, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rootfs_tar(name: str, packages: str) -> Path:
    """A debootstrap root file system as a tarball, cached under the tools dir."""
    cache = tools_dir() / "fleetlab"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{name}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(root)])
        if name.startswith("host"):
            _prepare_host_root(root)
        if name.startswith("monitoring"):
            _slim_monitoring_root(root)
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)
    return tarball


def _slim_monitoring_root(root: Path) -> None:
    """Drop what the lab's monitoring images never use (apt's caches, docs, the web UI's time zone data, the
    CLI tools): the service image tarball is loaded into every lab host, so its size is paid three times."""
    for pattern in (
        "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages", "usr/share/doc", "usr/share/man",
        "usr/share/locale", "usr/share/javascript/moment-timezone/data", "usr/bin/promtool", "usr/bin/amtool",
    ):  # fmt: skip
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _compose_plugin() -> Path:
    for candidate in (
        Path.home() / ".docker/cli-plugins/docker-compose",
        Path("/usr/libexec/docker/cli-plugins/docker-compose"),
    ):
        if candidate.exists():
            return candidate.resolve()
    raise RuntimeError("the Compose v2 plugin is missing: run .ci/install-tools")


def _prepare_host_root(root: Path) -> None:
    plugin_dir = root / "usr/libexec/docker/cli-plugins"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_compose_plugin(), plugin_dir / "docker-compose")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONFIG)
    _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "ovpn"])
    (root / "etc/sudoers.d/ovpn").write_text("ovpn ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/ovpn").chmod(0o440)


def _has_image(engine: Engine, ref: str) -> bool:
    return bool(engine.docker("images", "-q", ref).strip())


def _build(engine: Engine, tag: str, dockerfile: str, files: dict[str, Path] | None = None) -> None:
    with tempfile.TemporaryDirectory() as context:
        for name, path in (files or {}).items():
            shutil.copy2(path, Path(context) / name)
        (Path(context) / "Dockerfile").write_text(dockerfile)
        engine.docker("build", "--pull=false", "-t", tag, context, timeout=900)


def ensure_images(engine: Engine, xray_binary: Path) -> Path:
    """Build whatever is missing; return a `docker save` tarball of the service images for the inner engines."""
    if not _has_image(engine, "ovpn-fleetlab/host-rootfs:1"):
        engine.docker(
            "import", str(_rootfs_tar("host-rootfs-1", HOST_PACKAGES)), "ovpn-fleetlab/host-rootfs:1"
        )
    if not _has_image(engine, HOST_IMAGE):
        # An unlocked account without a password: sshd refuses locked accounts even for key logins.
        with tempfile.TemporaryDirectory() as tmp:
            init = Path(tmp) / "lab-host-init"
            init.write_text(HOST_INIT)
            init.chmod(0o755)
            dockerfile = (
                "FROM ovpn-fleetlab/host-rootfs:1\nRUN usermod -p '*' ovpn\n"
                "COPY lab-host-init /usr/local/sbin/lab-host-init\n"
                'CMD ["/usr/local/sbin/lab-host-init"]\n'
            )
            _build(engine, HOST_IMAGE, dockerfile, {"lab-host-init": init})
    if not _has_image(engine, RUNTIME_IMAGE):
        engine.docker("import", str(_rootfs_tar("runtime-rootfs-1", RUNTIME_PACKAGES)), RUNTIME_IMAGE)
    if not _has_image(engine, HAPROXY_IMAGE):
        _build(
            engine,
            HAPROXY_IMAGE,
            f'FROM {RUNTIME_IMAGE}\nCMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]\n',
        )
    if not _has_image(engine, XRAY_IMAGE):
        _build(
            engine,
            XRAY_IMAGE,
            "FROM scratch\nCOPY xray /usr/local/bin/xray\nUSER 65532:65532\n"
            'ENTRYPOINT ["/usr/local/bin/xray"]\nCMD ["-confdir", "/usr/local/etc/xray/"]\n',
            {"xray": xray_binary},
        )
    _ensure_monitoring_images(engine)
    saved = tools_dir() / "fleetlab" / SAVED_SERVICE_IMAGES
    if not saved.exists():
        for stale in saved.parent.glob("service-images-*.tar"):
            stale.unlink()
        partial = saved.with_suffix(".partial")
        engine.docker("save", "-o", str(partial), *SERVICE_IMAGES, timeout=900)
        partial.rename(saved)
    return saved


def _ensure_monitoring_images(engine: Engine) -> None:
    if not _has_image(engine, MONITORING_BASE_IMAGE):
        engine.docker(
            "import", str(_rootfs_tar("monitoring-rootfs-2", MONITORING_PACKAGES)), MONITORING_BASE_IMAGE
        )
    for image, (binary, data_dir) in _MONITORING_BINARIES.items():
        if _has_image(engine, image):
            continue
        prepare = f"RUN mkdir -p {data_dir} && chown nobody:nogroup {data_dir}\n" if data_dir else ""
        workdir = f"WORKDIR {data_dir}\n" if data_dir else ""
        _build(
            engine,
            image,
            f'FROM {MONITORING_BASE_IMAGE}\n{prepare}USER nobody\n{workdir}ENTRYPOINT ["{binary}"]\n',
        )
    if not _has_image(engine, GRAFANA_STANDIN_IMAGE):
        _build(
            engine,
            GRAFANA_STANDIN_IMAGE,
            f"FROM {RUNTIME_IMAGE}\nCOPY standin.py /usr/local/bin/ovpn-lab-standin\nUSER nobody\n"
            'ENTRYPOINT ["python3", "/usr/local/bin/ovpn-lab-standin"]\n',
            {"standin.py": Path(__file__).with_name("standin.py")},
        )
    if not _has_image(engine, CADVISOR_IMAGE):
        if not CADVISOR_BINARY.is_file():
            raise RuntimeError(f"{CADVISOR_BINARY} is missing: run .ci/install-tools")
        # The service is rendered privileged, and runc cannot start a privileged container as root inside a lab
        # host: this machine withholds CAP_SYS_RESOURCE, so no lab host has it to hand on. So the container
        # starts as `nobody` and the binary is setuid root: cAdvisor then runs as root with every capability
        # the host has, as the official image does, and reads the engine's socket and /var/lib/docker.
        _build(
            engine,
            CADVISOR_IMAGE,
            f"FROM {MONITORING_BASE_IMAGE}\nCOPY cadvisor-lab /usr/bin/cadvisor\n"
            "RUN chown 0:0 /usr/bin/cadvisor && chmod 4755 /usr/bin/cadvisor\nUSER 65534:65534\n"
            'ENTRYPOINT ["/usr/bin/cadvisor", "-logtostderr"]\n',
            {"cadvisor-lab": CADVISOR_BINARY},
        )
