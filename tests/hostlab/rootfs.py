"""Debian root file systems from debootstrap, cached as tarballs outside git.

`debootstrap` is given no mirror argument (its default, Debian's own, is used), `--variant=minbase` and the
packages to include. The result is packed as `<tools dir>/hostlab/rootfs/<suite>-<key>.tar`, where the key is a
hash of the suite and the sorted package list: a new package list builds a new tarball, the same one is reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.support.procs import LabError
from tests.support.tools import tools_dir

# What every lab host needs besides the caller's packages: systemd as PID 1, sshd, Python for Ansible, sudo, ip.
HOST_PACKAGES = ("systemd-sysv", "dbus", "openssh-server", "python3", "sudo", "iproute2")


def rootfs_key(suite: str, packages: Iterable[str]) -> str:
    wanted = sorted(set(packages))
    return hashlib.sha256("\n".join([suite, *wanted]).encode()).hexdigest()[:12]


def debootstrap_tarball(
    packages: Iterable[str],
    suite: str = "bookworm",
    cache_dir: Path | None = None,
    timeout: float = 1200,
) -> Path:
    """A tarball of a minbase SUITE root with HOST_PACKAGES and PACKAGES installed; built once, then reused.

    Concurrent callers wait on a lock file. Build failures raise LabError with debootstrap's last lines.
    """
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed (apt-get install debootstrap)")
    wanted = sorted(set(HOST_PACKAGES) | set(packages))
    key = rootfs_key(suite, wanted)
    directory = cache_dir or tools_dir() / "hostlab" / "rootfs"
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"{suite}-{key}.tar"
    with (directory / f".{suite}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        work = directory / f".{suite}-{key}.root"
        shutil.rmtree(work, ignore_errors=True)
        log = directory / f"{suite}-{key}.log"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(wanted)}", suite, str(work)]
        with log.open("wb") as out:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
            shutil.rmtree(work, ignore_errors=True)
            raise LabError(f"{' '.join(argv)} failed ({proc.returncode}), see {log}:\n{tail}")
        partial = tarball.with_suffix(".tar.partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."], check=True, timeout=timeout
        )
        partial.rename(tarball)
        shutil.rmtree(work, ignore_errors=True)
    return tarball
