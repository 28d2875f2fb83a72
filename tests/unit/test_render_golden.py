"""Golden bundles for the seed's topology: a plain vpn server, an attached backend, a proxy with two backends.

The golden files cover the runtime part of each bundle (Xray, HAProxy, Compose, .env, geodata) and the list of
every file with its mode; the monitoring part has its own tests. They were reviewed by hand when written. After an intended change, regenerate them with
`OVPN_UPDATE_GOLDEN=1 pytest tests/unit/test_render_golden.py` and review the diff before committing.
"""

import os
from pathlib import Path

import pytest
from tests.support.topology import BACKEND_1, PROXY, PROXY_EMPTY, SOLO, request

from ovpn.core.model import Server
from ovpn.render.bundle import Bundle
from ovpn.render.server_bundle import render_server_bundle

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = {"vpn-solo": SOLO, "backend-vpn-nl": BACKEND_1, "proxy-ru": PROXY, "proxy-no-backends": PROXY_EMPTY}


def _golden_paths(bundle: Bundle) -> list[str]:
    return [
        p for p in bundle
        if not p.startswith("monitoring/") and p != "docker-compose.monitoring.yml" and not p.endswith(".whl")
    ]  # fmt: skip


def _manifest(bundle: Bundle) -> str:
    return "".join(
        f"{oct(f.mode)} {'' if f.group is None else f'gid={f.group} '}{path}\n" for path, f in bundle.items()
    )


@pytest.mark.parametrize("case", CASES)
def test_bundle_matches_the_reviewed_golden_files(case: str) -> None:
    server: Server = CASES[case]
    bundle = render_server_bundle(request(server))
    directory = GOLDEN / case
    if os.environ.get("OVPN_UPDATE_GOLDEN") == "1":
        for path in _golden_paths(bundle):
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_bytes(bundle[path].content)
        (directory / "MODES").write_text(_manifest(bundle))
    assert (directory / "MODES").read_text() == _manifest(bundle)
    for path in _golden_paths(bundle):
        assert (directory / path).read_bytes() == bundle[path].content, f"{case}/{path} differs from golden"


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_deterministic(case: str) -> None:
    assert render_server_bundle(request(CASES[case])) == render_server_bundle(request(CASES[case]))
