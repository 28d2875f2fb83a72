"""The wheels the agent's image needs besides ovpn's own (gRPC for Xray's API, prometheus-client for /metrics),
for the host's platform.

Hosts have no package index: the operator machine downloads these wheels once per platform (CPU architecture of
the host, Python version of the agent's base image) with its own pip, keeps them in the data directory, and every
bundle carries them. The image build on the host installs them with `pip install --no-index`.

`OVPN_AGENT_WHEELHOUSE=DIR` makes ovpn take the wheels from DIR instead of the package index (an air-gapped
operator machine: fill DIR with `pip download` elsewhere, for the same pins and platform).
`OVPN_AGENT_WHEEL_CACHE=DIR` keeps the downloaded wheels in DIR instead of the data directory (shared by
several data directories, e.g. the test suite's).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovpn.errors import OvpnError
from ovpn.remote.base import Remote

# Pinned, with every transitive dependency (pip runs with --no-deps): the bundle (and so its hash) must not
# change when the index publishes a new release. The generated Xray stubs (scripts/gen-xray-protos) need
# grpcio >= 1.85.1 and protobuf >= 7.35.1, < 8; prometheus-client serves /metrics (the agent's and the bot's).
# The same image runs ovpn-telegram-bot, whose pins follow.
AGENT_REQUIREMENTS = (
    "grpcio==1.85.1",
    "protobuf==7.36.2",
    "typing-extensions==4.16.0",
    "prometheus-client==0.26.0",
    "python-telegram-bot==22.8",
    "httpx==0.28.1",
    "httpcore==1.0.9",
    "h11==0.16.0",
    "anyio==4.16.0",
    "idna==3.20",
    "certifi==2026.10.19.post1",
)
DEFAULT_MACHINE = "x86_64"
DEFAULT_PYTHON = "3.11"
# `uname -m` -> the manylinux architecture tag.
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_PYTHON_TAG = re.compile(r"(?:^|/)python:(3\.\d+)")


@dataclass(frozen=True)
class AgentPlatform:
    machine: str = DEFAULT_MACHINE
    python: str = DEFAULT_PYTHON

    @property
    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.machine}"


def normalise_machine(uname_m: str) -> str:
    machine = MACHINES.get(uname_m.strip().lower())
    if machine is None:
        raise OvpnError(
            f"the host's CPU architecture {uname_m.strip()!r} has no prebuilt gRPC wheels for the agent",
            f"supported: {', '.join(sorted(set(MACHINES.values())))}",
        )
    return machine


def python_of_base_image(reference: str) -> str:
    """The Python version of the agent's base image: from a `python:X.Y...` tag, else Debian 12's 3.11."""
    match = _PYTHON_TAG.search(reference)
    return match.group(1) if match else DEFAULT_PYTHON


def _machine_file(data_dir: Path, server: str) -> Path:
    return data_dir / "hosts" / f"{server}.machine"


def remembered_machine(data_dir: Path, server: str) -> str:
    """The host's architecture as the last deploy saw it (x86_64 until a deploy has looked)."""
    try:
        return normalise_machine(_machine_file(data_dir, server).read_text())
    except (OSError, OvpnError):
        return DEFAULT_MACHINE


def remember_machine(data_dir: Path, server: str, uname_m: str) -> bool:
    """Record the host's architecture; True when it differs from what ovpn assumed so far."""
    machine = normalise_machine(uname_m)
    changed = machine != remembered_machine(data_dir, server)
    path = _machine_file(data_dir, server)
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(machine + "\n")
    return changed


def dependency_wheels(
    data_dir: Path, platform: AgentPlatform, env: Mapping[str, str] | None = None
) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every pinned wheel for `platform`, downloaded once into the data directory."""
    env = os.environ if env is None else env
    digest = hashlib.sha256("\n".join(AGENT_REQUIREMENTS).encode()).hexdigest()[:12]
    root = (
        Path(env["OVPN_AGENT_WHEEL_CACHE"])
        if env.get("OVPN_AGENT_WHEEL_CACHE")
        else data_dir / "cache" / "agent-deps"
    )
    cache = root / f"{platform.key}-{digest}"
    if not cache.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache.parent))
        try:
            _download(staging, platform, env.get("OVPN_AGENT_WHEELHOUSE"))
            os.replace(staging, cache)
        except OSError:  # another ovpn process filled the cache first
            if not cache.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(cache.glob("*.whl"))
    if len(wheels) != len(AGENT_REQUIREMENTS):
        raise OvpnError(
            f"the agent's wheel cache {cache} is incomplete ({len(wheels)} of {len(AGENT_REQUIREMENTS)} wheels)",
            f"remove {cache} and try again",
        )
    return [(wheel.name, wheel.read_bytes()) for wheel in wheels]


def _download(directory: Path, platform: AgentPlatform, wheelhouse: str | None) -> None:
    abi = f"cp{platform.python.replace('.', '')}"
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
        "--timeout", "20", "--retries", "2",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", platform.python, "--abi", abi,
        "--abi", "abi3", "--abi", "none",
        "--platform", f"manylinux2014_{platform.machine}", "--platform", f"manylinux_2_17_{platform.machine}",
        "--platform", "any", "-d", str(directory),
    ]  # fmt: skip
    if wheelhouse:
        argv += ["--no-index", "--find-links", wheelhouse]
    proc = subprocess.run(
        [*argv, *AGENT_REQUIREMENTS], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package index"
        raise OvpnError(
            f"could not get the agent's wheels ({', '.join(AGENT_REQUIREMENTS)}) for {platform.key} from {where}: "
            f"{proc.stderr.strip()[-300:]}",
            "the operator machine needs the package index once per host platform, or set OVPN_AGENT_WHEELHOUSE "
            "to a directory holding these wheels",
        )


# ------------------------------------------------------------------------------------------------ on the host

HOST_WHEEL_CACHE = "/opt/ovpn-wheels"

# Builds the agent's image from the release's agent/ directory plus the cached wheels it lists (checked against
# agent/wheels.sha256), in a temporary context outside the releases. $1 release, $2 wheel cache, $3 tag, $4 base.
BUILD_SCRIPT = r"""set -e
ctx=$(mktemp -d /tmp/ovpn-agent-build.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp -R "$1/agent/." "$ctx/"
mkdir -p "$ctx/wheels"
if [ -f "$1/agent/wheels.sha256" ]; then
  while read -r sum name; do cp "$2/$name" "$ctx/wheels/$name"; done < "$1/agent/wheels.sha256"
  (cd "$ctx/wheels" && sha256sum --quiet -c ../wheels.sha256)
fi
docker build --quiet --tag "$3" --build-arg "BASE_IMAGE=$4" "$ctx"
"""


def ensure_wheels_on_host(ssh: Remote, wheels: Sequence[tuple[str, bytes]]) -> list[str]:
    """Upload the wheels the host's cache lacks (or holds damaged); returns the names uploaded."""
    if not wheels:
        return []
    ssh.run(["mkdir", "-p", HOST_WHEEL_CACHE], sudo=True, timeout=30)
    names = [name for name, _ in wheels]
    listing = ssh.run(["sh", "-c", 'cd "$1" && shift && sha256sum -- "$@" 2>/dev/null; true', "sh",
                       HOST_WHEEL_CACHE, *names], sudo=True, timeout=60)  # fmt: skip
    present = {}
    for line in listing.text.splitlines():
        digest, _, name = line.partition("  ")
        present[name.strip()] = digest
    uploaded = []
    for name, content in wheels:
        if present.get(name) != hashlib.sha256(content).hexdigest():
            ssh.write_file(f"{HOST_WHEEL_CACHE}/{name}", content, mode=0o644, timeout=600)
            uploaded.append(name)
    return uploaded
