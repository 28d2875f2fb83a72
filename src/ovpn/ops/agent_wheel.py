"""Build (once per source state) the wheel of this package that each host's agent image is built from."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ovpn
from ovpn.errors import OvpnError

# Zip timestamps from SOURCE_DATE_EPOCH make the wheel, and so the bundle hash, reproducible.
REPRODUCIBLE_EPOCH = "315532800"


def source_root() -> Path:
    root = Path(ovpn.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise OvpnError(
            "cannot find ovpn's source tree to build the agent's wheel",
            "run ovpn from its checkout (the ./ovpn launcher does)",
        )
    return root


def _source_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted([root / "pyproject.toml", *(root / "src").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def agent_wheel(data_dir: Path) -> tuple[str, bytes]:
    root = source_root()
    cache = data_dir / "cache" / "agent-wheel" / _source_digest(root)
    found = sorted(cache.glob("*.whl")) if cache.exists() else []
    if not found:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=cache.parent)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp,
                 str(root)],
                capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH},
                timeout=300, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                raise OvpnError(f"building the agent's wheel failed: {proc.stderr.strip()[-300:]}",
                                "check that setuptools and wheel are installed in ovpn's environment")  # fmt: skip
            with contextlib.suppress(OSError):  # another ovpn process may have finished the same build first
                os.replace(tmp, cache)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        found = sorted(cache.glob("*.whl"))
    return found[0].name, found[0].read_bytes()
