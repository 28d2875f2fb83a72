"""The wheel each host's agent image is built from: only the modules the agent and the Telegram bot run
(`ovpn.agent`, `ovpn.bot`, the pure `ovpn.core`, `ovpn.errors`).

Keeping CLI code out of it means an ovpn upgrade that does not touch the agent leaves every host's bundle, and so
its running agent and Xray, alone. The wheel is reproducible (fixed timestamps), so the same sources give the
same bundle hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import ovpn
from ovpn import __version__
from ovpn.ops.agent_deps import AGENT_REQUIREMENTS

DISTRIBUTION = "ovpn_agent"
PACKAGE_ROOT = Path(ovpn.__file__).resolve().parent
INCLUDED = ("__init__.py", "errors.py", "py.typed", "agent", "bot", "core")
# Zip timestamps from SOURCE_DATE_EPOCH (1980-01-01) make the wheel byte-for-byte reproducible.
REPRODUCIBLE_EPOCH = "315532800"


def agent_sources() -> list[tuple[str, Path]]:
    """(path inside the wheel, file) for every module the agent needs, in a stable order."""
    files: list[tuple[str, Path]] = []
    for name in INCLUDED:
        path = PACKAGE_ROOT / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                files.append((f"ovpn/{file.relative_to(PACKAGE_ROOT).as_posix()}", file))
    return files


def _metadata() -> dict[str, bytes]:
    dist_info = f"{DISTRIBUTION}-{__version__}.dist-info"
    return {
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: ovpn-agent\nVersion: {__version__}\n"
            "Summary: ovpn-agent, the per-host service of ovpn\nRequires-Python: >=3.11\n"
            + "".join(f"Requires-Dist: {requirement}\n" for requirement in AGENT_REQUIREMENTS)
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ovpn\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": (
            b"[console_scripts]\novpn-agent = ovpn.agent.main:main\novpn-telegram-bot = ovpn.bot.main:main\n"
        ),
    }


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def agent_wheel(data_dir: Path) -> tuple[str, bytes]:
    """Build (or reuse from the cache under the data dir) the agent's wheel: (file name, bytes)."""
    from wheel.wheelfile import WheelFile

    sources = agent_sources()
    h = hashlib.sha256(__version__.encode())
    for arcname, file in sources:
        h.update(arcname.encode() + b"\0" + file.read_bytes() + b"\0")
    name = f"{DISTRIBUTION}-{__version__}-py3-none-any.whl"
    cached = data_dir / "cache" / "agent-wheel" / h.hexdigest()[:16] / name
    if not cached.exists():
        staging = Path(tempfile.mkdtemp(dir=_ensure(cached.parent.parent)))
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = REPRODUCIBLE_EPOCH
        try:
            with WheelFile(staging / name, "w") as wheel:
                for arcname, file in sources:
                    wheel.write(str(file), arcname)
                for arcname, content in _metadata().items():
                    wheel.writestr(arcname, content)
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, cached)
        finally:
            if previous is None:
                os.environ.pop("SOURCE_DATE_EPOCH")
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous
            shutil.rmtree(staging, ignore_errors=True)
    return name, cached.read_bytes()
