"""Unit tests run offline: rendering takes stand-in agent wheels instead of downloading the real ones with pip."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovpn.ops import agent_deps


def _standin_download(directory: Path, platform: agent_deps.AgentPlatform, wheelhouse: str | None) -> None:
    """One small file per pinned requirement, named like the wheel pip would fetch for `platform`."""
    for requirement in agent_deps.AGENT_REQUIREMENTS:
        name, version = requirement.split("==")
        wheel = f"{name.replace('-', '_')}-{version}-py3-none-manylinux2014_{platform.machine}.whl"
        (directory / wheel).write_bytes(f"stands in for {requirement} ({platform.key})".encode())


@pytest.fixture(scope="session")
def standin_wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-wheels")


@pytest.fixture(autouse=True)
def standin_agent_wheels(monkeypatch: pytest.MonkeyPatch, standin_wheel_cache: Path) -> None:
    monkeypatch.setenv("OVPN_AGENT_WHEEL_CACHE", str(standin_wheel_cache))
    monkeypatch.delenv("OVPN_AGENT_WHEELHOUSE", raising=False)
    monkeypatch.setattr(agent_deps, "_download", _standin_download)
