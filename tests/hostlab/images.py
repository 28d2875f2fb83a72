"""The systemd host image: a debootstrapped Debian that boots systemd as PID 1 in a lab container.

Built FROM an image imported from a `rootfs.debootstrap_tarball` (never pulled). What it adds:

* `/usr/local/sbin/hostlab-init`, the container's command: makes new SSH host keys, remounts the container's own cgroup v1 hierarchies
  read-write (Docker mounts them read-only; with `--cgroupns private` they show only the container's subtree),
  so systemd and an inner Docker engine can manage cgroups, then execs systemd;
* no apt sources: apt on a lab host has nothing to download from, so nothing can try;
* masked units that would change the kernel this machine shares with the container (systemd-sysctl,
  systemd-modules-load) and gettys that have no terminal.
"""

from __future__ import annotations

from tests.hostlab.engine import DockerEngine

HOSTLAB_INIT = b"""#!/bin/sh
# hostlab: fresh SSH host keys (each container is a different server), this container's cgroup v1 hierarchies
# writable, then boot systemd.
set -e
if [ -x /usr/bin/ssh-keygen ]; then
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -A >/dev/null
fi
for hierarchy in /sys/fs/cgroup/*; do
  if mountpoint -q "$hierarchy"; then
    mount -o remount,rw,bind "$hierarchy"
  fi
done
exec /sbin/init
"""

MASKED_UNITS = (
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "getty@tty1.service",
    "console-getty.service",
    "serial-getty@console.service",
)


def systemd_host_dockerfile(base: str, extra: str = "") -> str:
    """The Dockerfile text; EXTRA (Dockerfile lines) goes after the common part, before CMD."""
    return f"""FROM {base}
COPY hostlab-init /usr/local/sbin/hostlab-init
RUN chmod 0755 /usr/local/sbin/hostlab-init \\
 && rm -f /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/* \\
 && systemctl mask {" ".join(MASKED_UNITS)}
{extra}
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/usr/local/sbin/hostlab-init"]
"""


def build_systemd_host_image(engine: DockerEngine, base: str, ref: str, extra: str = "") -> str:
    """Build REF on top of the local image BASE (see the module docstring). Returns REF."""
    return engine.build_image(
        ref, systemd_host_dockerfile(base, extra), files={"hostlab-init": HOSTLAB_INIT}, base=base
    )
