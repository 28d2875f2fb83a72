"""The geodata cache against a real HTTP server on 127.0.0.1 (no other network, no sleeping)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ovpn.core.presets import PRESETS, GeodataFeed, Preset
from ovpn.errors import OvpnError
from ovpn.geodata.cache import GeodataFiles, load_geodata_set, resolve_geodata
from ovpn.geodata.dat import DomainRule, DomainType, list_codes, write_geoip, write_geosite

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Upstream:
    """A directory served over HTTP, with a log of requested paths."""

    root: Path
    base: str
    server: ThreadingHTTPServer
    requests: list[str] = field(default_factory=list)

    def publish(
        self, name: str, data: bytes, checksum_name: str | None = None, digest: str | None = None
    ) -> None:
        (self.root / name).write_bytes(data)
        digest = digest or hashlib.sha256(data).hexdigest()
        (self.root / f"{name}.sha256sum").write_text(f"{digest}  {checksum_name or './publish/' + name}\n")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    up = Upstream(root, f"http://127.0.0.1:{server.server_address[1]}", server, requests)
    yield up
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _geosite(extra: str = "") -> bytes:
    rules = [DomainRule(DomainType.DOMAIN, "vk.com")] + (
        [DomainRule(DomainType.FULL, extra)] if extra else []
    )
    return write_geosite({"category-ads-all": [], "ru-available-only-inside": rules})


def _geoip(extra: str = "") -> bytes:
    return write_geoip({"ru": ["77.88.0.0/18"] + ([extra] if extra else []), "private": ["10.0.0.0/8"]})


def _preset(up: Upstream) -> Preset:
    feed = GeodataFeed(geosite_url=f"{up.base}/geosite.dat", geoip_url=f"{up.base}/geoip.dat")
    return replace(PRESETS["ru"], feed=feed)


class Clock:
    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        return self.moment


def _resolve(up: Upstream, data_dir: Path, clock: Clock, env: dict[str, str] | None = None) -> GeodataFiles:
    return resolve_geodata(_preset(up), data_dir, env=env or {}, now=clock)


def _stray_files(directory: Path) -> list[str]:
    return sorted(
        p.name for p in directory.iterdir() if p.name not in ("geosite.dat", "geoip.dat", "meta.json")
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_first_download(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip(), checksum_name="geoip.dat")
    files = _resolve(upstream, data_dir, clock)
    cache = data_dir / "geodata" / "ru"
    assert files == GeodataFiles(cache / "geosite.dat", cache / "geoip.dat", "download", T0, None)
    assert files.geosite.read_bytes() == _geosite()
    assert files.geoip.read_bytes() == _geoip()
    assert upstream.requests == [
        "/geosite.dat.sha256sum",
        "/geosite.dat",
        "/geoip.dat.sha256sum",
        "/geoip.dat",
    ]
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["geosite.dat"] == {
        "url": f"{upstream.base}/geosite.dat",
        "sha256": hashlib.sha256(_geosite()).hexdigest(),
        "fetched_at": T0.isoformat(),
    }
    assert _stray_files(cache) == []
    geodata = load_geodata_set(files)
    assert geodata.missing_categories(["ru-available-only-inside"], ["ru", "private"]) == []


def test_fresh_cache_makes_no_requests(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    _resolve(upstream, data_dir, clock)
    upstream.requests.clear()
    clock.moment = T0 + timedelta(hours=23, minutes=59)
    files = _resolve(upstream, data_dir, clock)
    assert (files.source, files.fetched_at, files.warning) == ("cache", T0, None)
    assert upstream.requests == []


def test_refresh_after_24_hours(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    _resolve(upstream, data_dir, clock)
    upstream.publish("geosite.dat", _geosite("new.example"))
    upstream.requests.clear()
    clock.moment = T0 + timedelta(hours=24)
    files = _resolve(upstream, data_dir, clock)
    assert (files.source, files.fetched_at, files.warning) == ("download", clock.moment, None)
    assert files.geosite.read_bytes() == _geosite("new.example")
    # geoip.dat was unchanged upstream: only its checksum was fetched.
    assert upstream.requests == ["/geosite.dat.sha256sum", "/geosite.dat", "/geoip.dat.sha256sum"]
    meta = json.loads((files.geoip.parent / "meta.json").read_text())
    assert meta["geoip.dat"]["fetched_at"] == clock.moment.isoformat()


def test_checksum_mismatch_keeps_the_old_copy(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    _resolve(upstream, data_dir, clock)
    upstream.publish("geosite.dat", _geosite("evil.example"), digest="0" * 64)
    clock.moment = T0 + timedelta(days=2, hours=3)
    files = _resolve(upstream, data_dir, clock)
    assert files.source == "download"  # geoip.dat was refreshed; geosite.dat was not
    assert files.geosite.read_bytes() == _geosite()
    assert files.fetched_at == T0  # the older of the two files
    assert files.warning is not None
    assert "checksum mismatch" in files.warning
    assert "2 days 3 hours ago" in files.warning
    assert f"{upstream.base}/geosite.dat" in files.warning
    assert _stray_files(files.geosite.parent) == []


def test_checksum_mismatch_without_a_copy_is_an_error(
    upstream: Upstream, data_dir: Path, clock: Clock
) -> None:
    upstream.publish("geosite.dat", _geosite(), digest="ab" * 32)
    upstream.publish("geoip.dat", _geoip())
    with pytest.raises(OvpnError) as info:
        _resolve(upstream, data_dir, clock)
    assert f"{upstream.base}/geosite.dat" in info.value.message
    assert "checksum mismatch" in info.value.message
    assert "OVPN_PROXY_GEOSITE_PATH" in info.value.hint and "OVPN_PROXY_GEOIP_PATH" in info.value.hint
    assert not (data_dir / "geodata" / "ru" / "geosite.dat").exists()
    assert _stray_files(data_dir / "geodata" / "ru") == []


def test_server_down_without_a_copy(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.stop()
    with pytest.raises(OvpnError) as info:
        _resolve(upstream, data_dir, clock)
    assert f"{upstream.base}/geosite.dat" in info.value.message
    assert "refused" in info.value.message.lower()
    assert "OVPN_PROXY_GEOSITE_PATH" in info.value.hint


def test_server_down_with_a_copy(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    _resolve(upstream, data_dir, clock)
    upstream.stop()
    clock.moment = T0 + timedelta(hours=30)
    files = _resolve(upstream, data_dir, clock)
    assert (files.source, files.fetched_at) == ("cache", T0)
    assert files.geosite.read_bytes() == _geosite()
    assert files.warning is not None
    assert "geosite.dat" in files.warning and "geoip.dat" in files.warning
    assert "1 day 6 hours ago" in files.warning


def test_missing_upstream_file_is_reported_with_status(
    upstream: Upstream, data_dir: Path, clock: Clock
) -> None:
    upstream.publish("geosite.dat", _geosite())
    with pytest.raises(OvpnError, match="404"):
        _resolve(upstream, data_dir, clock)


def test_malformed_checksum_file(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    (upstream.root / "geosite.dat.sha256sum").write_text("<html>rate limited</html>\n")
    with pytest.raises(OvpnError, match="does not start with a sha256"):
        _resolve(upstream, data_dir, clock)


def test_download_without_the_preset_categories_is_refused(
    upstream: Upstream, data_dir: Path, clock: Clock
) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", write_geoip({"ru": ["77.88.0.0/18"]}))
    with pytest.raises(OvpnError, match="lacks category private"):
        _resolve(upstream, data_dir, clock)


def test_download_that_is_not_geodata_is_refused(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", b"<html>not found</html>")
    upstream.publish("geoip.dat", _geoip())
    with pytest.raises(OvpnError, match="not a valid geodata file"):
        _resolve(upstream, data_dir, clock)


def test_url_overrides(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    (upstream.root / "mirror").mkdir()
    upstream.publish("mirror/site.dat", _geosite("mirror.example"))
    upstream.publish("mirror/ip.dat", _geoip())
    env = {
        "OVPN_PROXY_GEOSITE_URL": f"{upstream.base}/mirror/site.dat",
        "OVPN_PROXY_GEOIP_URL": f"{upstream.base}/mirror/ip.dat",
    }
    files = resolve_geodata(PRESETS["ru"], data_dir, env=env, now=clock)
    assert files.source == "download"
    assert files.geosite.read_bytes() == _geosite("mirror.example")
    assert upstream.requests == [
        "/mirror/site.dat.sha256sum",
        "/mirror/site.dat",
        "/mirror/ip.dat.sha256sum",
        "/mirror/ip.dat",
    ]


def test_changed_url_refreshes_a_fresh_cache(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    upstream.publish("other.dat", _geosite("other.example"))
    _resolve(upstream, data_dir, clock)
    upstream.requests.clear()
    files = _resolve(upstream, data_dir, clock, env={"OVPN_PROXY_GEOSITE_URL": f"{upstream.base}/other.dat"})
    assert files.geosite.read_bytes() == _geosite("other.example")
    assert upstream.requests == ["/other.dat.sha256sum", "/other.dat"]


def test_tampered_cache_is_refreshed(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    upstream.publish("geosite.dat", _geosite())
    upstream.publish("geoip.dat", _geoip())
    files = _resolve(upstream, data_dir, clock)
    files.geosite.write_bytes(b"garbage")
    upstream.requests.clear()
    again = _resolve(upstream, data_dir, clock)
    assert again.geosite.read_bytes() == _geosite()
    assert upstream.requests == ["/geosite.dat.sha256sum", "/geosite.dat"]


def test_unrecorded_copy_is_used_with_unknown_age(upstream: Upstream, data_dir: Path, clock: Clock) -> None:
    cache = data_dir / "geodata" / "ru"
    cache.mkdir(parents=True)
    (cache / "geosite.dat").write_bytes(_geosite())
    (cache / "geoip.dat").write_bytes(_geoip())
    upstream.stop()
    files = _resolve(upstream, data_dir, clock)
    assert (files.source, files.fetched_at) == ("cache", None)
    assert files.warning is not None and "unknown age" in files.warning
    assert list_codes(files.geoip.read_bytes()) == ["RU", "PRIVATE"]


# --- Environment overrides ----------------------------------------------------------------------------------


def test_env_paths_win(upstream: Upstream, data_dir: Path, clock: Clock, tmp_path: Path) -> None:
    site = tmp_path / "my-geosite.dat"
    ip = tmp_path / "my-geoip.dat"
    site.write_bytes(_geosite())
    ip.write_bytes(_geoip())
    env = {"OVPN_PROXY_GEOSITE_PATH": str(site), "OVPN_PROXY_GEOIP_PATH": str(ip)}
    files = _resolve(upstream, data_dir, clock, env=env)
    assert files == GeodataFiles(site, ip, "env", None, None)
    assert upstream.requests == []
    assert not data_dir.exists()
    with pytest.raises(OvpnError, match=f'"cn" is not in {ip}'):
        load_geodata_set(files).geoip("cn")


@pytest.mark.parametrize("given", ["OVPN_PROXY_GEOSITE_PATH", "OVPN_PROXY_GEOIP_PATH"])
def test_env_only_one_path(
    upstream: Upstream, data_dir: Path, clock: Clock, tmp_path: Path, given: str
) -> None:
    path = tmp_path / "x.dat"
    path.write_bytes(b"")
    with pytest.raises(OvpnError) as info:
        _resolve(upstream, data_dir, clock, env={given: str(path)})
    assert given in info.value.message
    assert "set both OVPN_PROXY_GEOSITE_PATH and OVPN_PROXY_GEOIP_PATH, or neither" in info.value.hint
    assert upstream.requests == []


def test_env_missing_file(upstream: Upstream, data_dir: Path, clock: Clock, tmp_path: Path) -> None:
    site = tmp_path / "geosite.dat"
    site.write_bytes(_geosite())
    missing = tmp_path / "nope" / "geoip.dat"
    env = {"OVPN_PROXY_GEOSITE_PATH": str(site), "OVPN_PROXY_GEOIP_PATH": str(missing)}
    with pytest.raises(OvpnError) as info:
        _resolve(upstream, data_dir, clock, env=env)
    assert "OVPN_PROXY_GEOIP_PATH" in info.value.message and str(missing) in info.value.message


def test_env_directory_is_not_a_file(
    upstream: Upstream, data_dir: Path, clock: Clock, tmp_path: Path
) -> None:
    site = tmp_path / "geosite.dat"
    site.write_bytes(_geosite())
    env = {"OVPN_PROXY_GEOSITE_PATH": str(tmp_path), "OVPN_PROXY_GEOIP_PATH": str(site)}
    with pytest.raises(OvpnError, match="OVPN_PROXY_GEOSITE_PATH"):
        _resolve(upstream, data_dir, clock, env=env)
