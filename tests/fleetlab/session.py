"""The fleet lab as the fleet tests use it, for the pytest fixtures and `python -m tests.fleetlab` alike."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tests.fleetlab.engine import Engine, start_engine
from tests.fleetlab.hosts import FleetLab, lab_lock, start_lab, stop_lab
from tests.fleetlab.images import ensure_images

FLEET_HOSTS = ("proxy-ru", "vpn-nl", "vpn-de")
REQUIRED_TOOLS = ("dockerd", "debootstrap", "nsenter")


def missing_requirement() -> str | None:
    """Why the fleet lab cannot run on this machine, or None."""
    for tool in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed; run .ci/install-tools"
    if os.geteuid() != 0:
        return "the fleet lab needs root (network namespaces, a private Docker engine)"
    return None


@contextlib.contextmanager
def locked_engine() -> Iterator[Engine]:
    """The lab's private engine, held under the lab lock (one lab per machine); stopped on the way out if this
    process started it."""
    with lab_lock():
        engine = start_engine()
        try:
            yield engine
        finally:
            engine.stop()


@contextlib.contextmanager
def running_lab(engine: Engine, workdir: Path, xray_binary: Path) -> Iterator[FleetLab]:
    """The images (built if missing) and the fleet tests' hosts; removed again on the way out."""
    images = ensure_images(engine, xray_binary)
    lab = start_lab(engine, list(FLEET_HOSTS), workdir, images)
    try:
        yield lab
    finally:
        stop_lab(lab)
