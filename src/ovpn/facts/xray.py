"""Xray on a host: its config checked by the pinned image, and the live config's relay identity."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ovpn.core.model import RELAY_EMAIL, Server
from ovpn.core.names import RUNTIME_DIR
from ovpn.facts.base import Fact, combined_output
from ovpn.facts.docker import DOCKER_RUN_FAILED, parse_run_failure
from ovpn.remote.base import RemoteResult


@dataclass(frozen=True)
class ConfigTest:
    ok: bool
    last_line: str  # Xray's verdict ("Configuration OK.") or the line that says why not; empty without output
    # Docker could not run the image at all (it is missing, unknown to the registry, or refused): `last_line`
    # is then docker's error, not Xray's.
    image_missing: bool = False


def parse_config_test(result: RemoteResult) -> ConfigTest:
    output = combined_output(result)
    if result.returncode == DOCKER_RUN_FAILED:
        failure = parse_run_failure(output)
        if failure is not None:
            return ConfigTest(False, failure.line, failure.image_missing)
    lines = output.splitlines()
    return ConfigTest(result.ok, lines[-1] if lines else "")


def config_test(image: str, directory: str, *, geodata: bool, pull: str) -> Fact[ConfigTest]:
    """`xray run -test` with `image` on the release in `directory` (its geodata mounted for a proxy), with no
    network: the same check before a switch and in doctor."""
    mounts = ["-v", f"{directory}/xray/config.json:/etc/xray/config.json:ro"]
    if geodata:
        mounts += ["-v", f"{directory}/geodata:/usr/local/share/xray:ro"]
    argv = ("docker", "run", "--rm", f"--pull={pull}", "--network", "none", *mounts, image,
            "run", "-test", "-config", "/etc/xray/config.json")  # fmt: skip
    return Fact(argv, parse_config_test, timeout=180)


def _text_or_none(result: RemoteResult) -> str | None:
    return result.text if result.ok else None


def live_config() -> Fact[str | None]:
    """The live Xray config's text; None when the host has none (never deployed)."""
    return Fact(("cat", f"{RUNTIME_DIR}/xray/config.json"), _text_or_none, timeout=30)


def has_relay_identity(config_text: str, backend: Server) -> bool:
    """Whether a backend's Xray config accepts its proxies' relay: the relay client with the pool's UUID and the
    backend's own short id (the seed's `invalid request user id` case when not)."""
    try:
        inbound = json.loads(config_text)["inbounds"][0]
        clients = inbound["settings"]["clients"]
        short_ids = inbound["streamSettings"]["realitySettings"]["shortIds"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    has_client = any(c.get("email") == RELAY_EMAIL and c.get("id") == backend.relay_uuid for c in clients)
    return has_client and backend.reality_short_id in short_ids


def live_port(config_text: str) -> int | None:
    """The port a live config's VLESS inbound listens on (None when the config does not say)."""
    try:
        port = json.loads(config_text)["inbounds"][0]["port"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return port if isinstance(port, int) else None
