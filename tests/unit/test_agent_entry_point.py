"""The installed `ovpn-agent` command in a virtualenv without the agent extra: one line saying what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Loaded by `site` at start-up: `import grpc` then fails as it does where grpcio is not installed.
WITHOUT_GRPC = """
import sys


class WithoutGrpc:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc" or name.startswith("grpc."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, WithoutGrpc())
"""


def test_the_agent_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ovpn-agent"
    assert script.is_file(), "the ovpn-agent entry point is not installed in this virtualenv"
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_GRPC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [str(script), "--listen", "127.0.0.1:1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "grpc" in lines[0] and "pip install 'ovpn[agent]'" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
