"""hostlab: real Debian hosts for tests, as containers of a private Docker engine on this machine.

Reusable by any test that needs "a server": SSH + systemd + Docker (+ Compose), reached only from a controller
network namespace, never from the root namespace (TEST-LAB.md, the network rule). Nothing is pulled from a
registry: images come from a debootstrap tarball and local builds.

    from tests.hostlab import (HostLab, build_systemd_host_image, debootstrap_tarball, generate_keypair,
                               rootfs_key, ssh_argv, wait_for_ssh)

    packages = ["docker.io", "docker-compose"]                          # plus HOST_PACKAGES, always included
    tarball = debootstrap_tarball(packages)                            # cached under $OVPN_TOOLS_DIR/hostlab
    with HostLab("fleet", subnet="10.218.1.0/24") as lab:              # own dockerd, network, blackhole route
        base = lab.engine.import_rootfs(tarball, f"hostlab/debian12:{rootfs_key('bookworm', packages)}")
        image = build_systemd_host_image(lab.engine, base, "hostlab/ssh-docker-host:1")
        controller = lab.start_controller(base)                        # a netns on the lab network
        host = lab.start_systemd_host("vpn-1", image)                  # boots systemd, sshd, docker
        keys = generate_keypair(tmp_path / "keys")
        host.authorize_key("root", keys.public)
        wait_for_ssh(controller, host.address)
        proc = controller.run(ssh_argv(host.address, "root", "docker version", key=keys.private,
                                       known_hosts=tmp_path / "known_hosts"))
        controller.run(["ovpn", "--data-dir", ..., "deploy", "vpn-1"])   # any program of this machine
    # leaving the block removes the containers, the network, stops dockerd by PID, drops the route

Pieces, usable alone:
  engine.DockerEngine     start/stop a private dockerd (--iptables=false --ip-forward=false --bridge=none);
                          run/text/inspect docker commands; import_rootfs; build_image (base must exist);
                          create_internal_network (internal, no IPv4 on the bridge); remove_containers.
  rootfs                  debootstrap_tarball(packages, suite) -> cached tarball; HOST_PACKAGES; tools_dir().
  images                  build_systemd_host_image(engine, base, ref, extra Dockerfile lines).
  net                     Blackhole(prefix); Controller(pid).run/argv/tcp_probe; isolated_argv (unshare --net).
  ssh                     generate_keypair, client_options, ssh_argv, wait_for_ssh, close_masters.
  lab.HostLab             the composition above; LabHost.exec/authorize_key/wait_for_boot.
"""

from tests.hostlab.engine import NEVER_PULL, DockerEngine
from tests.hostlab.images import build_systemd_host_image, systemd_host_dockerfile
from tests.hostlab.lab import SYSTEMD_HOST_OPTIONS, HostLab, LabHost
from tests.hostlab.net import Blackhole, Controller, isolated_argv, remove_default_route
from tests.hostlab.rootfs import HOST_PACKAGES, debootstrap_tarball, rootfs_key
from tests.hostlab.ssh import KeyPair, client_options, close_masters, generate_keypair, ssh_argv, wait_for_ssh
from tests.support.procs import LabError, stop_pid
from tests.support.tools import tools_dir

__all__ = [
    "HOST_PACKAGES",
    "NEVER_PULL",
    "SYSTEMD_HOST_OPTIONS",
    "Blackhole",
    "Controller",
    "DockerEngine",
    "HostLab",
    "KeyPair",
    "LabError",
    "LabHost",
    "build_systemd_host_image",
    "client_options",
    "close_masters",
    "debootstrap_tarball",
    "generate_keypair",
    "isolated_argv",
    "remove_default_route",
    "rootfs_key",
    "ssh_argv",
    "stop_pid",
    "systemd_host_dockerfile",
    "tools_dir",
    "wait_for_ssh",
]
