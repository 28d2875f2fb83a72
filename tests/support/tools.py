"""Where `.ci/install-tools` puts the external tools, and the caches the test suite keeps beside them (outside git)."""

from __future__ import annotations

import os
from pathlib import Path


def tools_dir() -> Path:
    """`$OVPN_TOOLS_DIR`, default `~/.cache/ovpn-tools`."""
    return Path(os.environ.get("OVPN_TOOLS_DIR", "~/.cache/ovpn-tools")).expanduser()


def tools_bin_dir() -> Path:
    return tools_dir() / "bin"


def agent_wheel_cache() -> Path:
    """The agent's downloaded wheels, shared by every data directory of the suite (`OVPN_AGENT_WHEEL_CACHE`)."""
    return tools_dir() / "agent-wheels"
