"""Obtaining a preset's geosite.dat and geoip.dat for rendering: environment override, cache, or download.

Order of precedence:

1. `OVPN_PROXY_GEOSITE_PATH` and `OVPN_PROXY_GEOIP_PATH` (both or neither): use those files as they are.
2. The cache in `<data_dir>/geodata/<preset>/`, used as is while younger than `max_age`.
3. A download from the preset's feed (or `OVPN_PROXY_GEOSITE_URL` / `OVPN_PROXY_GEOIP_URL`), checked against
   the `<url>.sha256sum` file next to it. Only the first token of that file is compared: upstream's file-name
   part is inconsistent (`geoip.dat`, `./publish/geosite.dat`).

A failed refresh keeps a previous good copy and says so in `GeodataFiles.warning`; with no copy it is an
error that names the URL and suggests the environment override.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from pathlib import Path
from typing import Literal

from ovpn.atomic import replace_file
from ovpn.core.presets import Preset
from ovpn.errors import OvpnError
from ovpn.geodata.dat import GeodataError, list_codes
from ovpn.geodata.match import GeodataSet

__all__ = [
    "ENV_GEOIP_PATH",
    "ENV_GEOIP_URL",
    "ENV_GEOSITE_PATH",
    "ENV_GEOSITE_URL",
    "GeodataFiles",
    "fetch_url",
    "load_geodata_set",
    "resolve_geodata",
]

ENV_GEOSITE_PATH = "OVPN_PROXY_GEOSITE_PATH"
ENV_GEOIP_PATH = "OVPN_PROXY_GEOIP_PATH"
ENV_GEOSITE_URL = "OVPN_PROXY_GEOSITE_URL"
ENV_GEOIP_URL = "OVPN_PROXY_GEOIP_URL"

GEOSITE_FILE = "geosite.dat"
GEOIP_FILE = "geoip.dat"
META_FILE = "meta.json"
FETCH_TIMEOUT_SECONDS = 30.0
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024

Source = Literal["env", "cache", "download"]

_HINT = (
    f"download geosite.dat and geoip.dat yourself and set {ENV_GEOSITE_PATH} and {ENV_GEOIP_PATH} "
    "to their paths"
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}\Z")


@dataclass(frozen=True)
class GeodataFiles:
    """The two files to render with.

    `source` is "env" for the environment override, "download" when this call refreshed at least one file
    from the network, and "cache" when the cached copies were used without a successful refresh.
    `fetched_at` is when the older of the two was last confirmed against upstream (None for "env").
    `warning` is set when a refresh failed and an older copy is used.
    """

    geosite: Path
    geoip: Path
    source: Source
    fetched_at: datetime | None
    warning: str | None


def fetch_url(url: str) -> bytes:
    """GET `url` over HTTP(S) with a 30 s timeout; raises OSError/HTTPException/OvpnError on failure."""
    if not url.startswith(("https://", "http://")):
        raise OvpnError(f"refusing to fetch {url!r}: only http:// and https:// URLs are allowed")
    request = urllib.request.Request(url, headers={"User-Agent": "ovpn-geodata"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        data: bytes = response.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise OvpnError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _env_file(env: Mapping[str, str], variable: str) -> Path:
    path = Path(env[variable])
    if not path.is_file():
        raise OvpnError(
            f"{variable}={path} does not exist or is not a regular file",
            hint=f"point {variable} at a readable .dat file, or unset it",
        )
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise OvpnError(
            f"{variable}={path} cannot be read: {exc.strerror or exc}",
            hint=f"point {variable} at a readable .dat file, or unset it",
        ) from exc
    return path


def _from_env(env: Mapping[str, str]) -> GeodataFiles | None:
    site = env.get(ENV_GEOSITE_PATH, "")
    ip = env.get(ENV_GEOIP_PATH, "")
    if not site and not ip:
        return None
    if not site or not ip:
        given, missing = (ENV_GEOSITE_PATH, ENV_GEOIP_PATH) if site else (ENV_GEOIP_PATH, ENV_GEOSITE_PATH)
        raise OvpnError(
            f"{given} is set but {missing} is not",
            hint=f"set both {ENV_GEOSITE_PATH} and {ENV_GEOIP_PATH}, or neither",
        )
    return GeodataFiles(
        geosite=_env_file(env, ENV_GEOSITE_PATH),
        geoip=_env_file(env, ENV_GEOIP_PATH),
        source="env",
        fetched_at=None,
        warning=None,
    )


def _describe_age(age: timedelta) -> str:
    minutes = max(0, int(age.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts: list[str] = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if not days and (minutes or not parts):
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


def _sha256_file(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


@dataclass
class _Entry:
    """What meta.json records for one file."""

    url: str
    sha256: str
    fetched_at: datetime

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "sha256": self.sha256, "fetched_at": self.fetched_at.isoformat()}


def _read_meta(path: Path) -> dict[str, _Entry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries: dict[str, _Entry] = {}
    if not isinstance(raw, dict):
        return entries
    for name, item in raw.items():
        try:
            entries[name] = _Entry(
                url=str(item["url"]),
                sha256=str(item["sha256"]),
                fetched_at=_as_utc(datetime.fromisoformat(str(item["fetched_at"]))),
            )
        except (KeyError, TypeError, ValueError):
            continue
    return entries


class _RefreshError(Exception):
    """Why one refresh attempt failed (internal; turned into a warning or an OvpnError)."""


def _download(url: str, fetch: Callable[[str], bytes], what: str) -> bytes:
    try:
        return fetch(url)
    except (OSError, ValueError, HTTPException, OvpnError) as exc:
        reason = exc.message if isinstance(exc, OvpnError) else str(exc) or type(exc).__name__
        raise _RefreshError(f"downloading the {what} {url} failed: {reason}") from exc


def _expected_sha256(url: str, fetch: Callable[[str], bytes]) -> str:
    checksum_url = url + ".sha256sum"
    text = _download(checksum_url, fetch, "checksum").decode("utf-8", errors="replace")
    tokens = text.split()
    if not tokens or not _SHA256.match(tokens[0]):
        raise _RefreshError(f"the checksum file {checksum_url} does not start with a sha256 hex digest")
    return tokens[0].lower()


def _check_content(data: bytes, name: str, required: Sequence[str]) -> None:
    try:
        codes = set(list_codes(data))
    except GeodataError as exc:
        raise _RefreshError(f"the downloaded {name} is not a valid geodata file: {exc.message}") from exc
    missing = [code for code in required if code.split("@", 1)[0].upper() not in codes]
    if missing:
        raise _RefreshError(
            f"the downloaded {name} lacks categor{'ies' if len(missing) > 1 else 'y'} " + ", ".join(missing)
        )


def _usable(path: Path, required: Sequence[str]) -> bool:
    try:
        _check_content(path.read_bytes(), path.name, required)
    except (OSError, _RefreshError):
        return False
    return True


@dataclass
class _Outcome:
    fetched_at: datetime | None
    downloaded: bool
    warning: str | None


def _refresh(
    path: Path,
    url: str,
    required: Sequence[str],
    meta: dict[str, _Entry],
    current_sha: str | None,
    moment: datetime,
    fetch: Callable[[str], bytes],
) -> None:
    """Bring `path` up to date with `url`, or raise _RefreshError leaving the old file untouched."""
    expected = _expected_sha256(url, fetch)
    if expected != current_sha:
        data = _download(url, fetch, "file")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise _RefreshError(
                f"checksum mismatch for {url}: the .sha256sum file says {expected}, the download is {actual}"
            )
        _check_content(data, path.name, required)
        try:
            replace_file(path, data, 0o644)
        except OSError as exc:
            raise _RefreshError(f"cannot write {path}: {exc.strerror or exc}") from exc
    meta[path.name] = _Entry(url=url, sha256=expected, fetched_at=moment)


def _ensure(
    path: Path,
    url: str,
    required: Sequence[str],
    meta: dict[str, _Entry],
    moment: datetime,
    fetch: Callable[[str], bytes],
    max_age: timedelta,
    preset_name: str,
) -> _Outcome:
    entry = meta.get(path.name)
    current_sha = _sha256_file(path) if path.is_file() else None
    recorded = entry is not None and current_sha is not None and entry.sha256 == current_sha
    if entry is not None and recorded and entry.url == url:
        age = moment - entry.fetched_at
        if timedelta(0) <= age < max_age:
            return _Outcome(entry.fetched_at, downloaded=False, warning=None)
    try:
        _refresh(path, url, required, meta, current_sha, moment, fetch)
    except _RefreshError as exc:
        reason = str(exc)
        if current_sha is not None and not recorded and not _usable(path, required):
            current_sha = None  # an unrecorded leftover that is not valid geodata: not a copy to fall back on
        if current_sha is None:
            raise OvpnError(
                f"cannot get {path.name} for preset {preset_name!r} from {url}: {reason}", hint=_HINT
            ) from None
        if entry is not None and recorded:
            when = (
                f"fetched {entry.fetched_at:%Y-%m-%d %H:%M} UTC, "
                f"{_describe_age(moment - entry.fetched_at)} ago"
            )
            fetched_at: datetime | None = entry.fetched_at
        else:
            when = "of unknown age"
            fetched_at = None
        return _Outcome(fetched_at, downloaded=False, warning=f"{reason}; using the cached {path} ({when})")
    return _Outcome(moment, downloaded=True, warning=None)


def resolve_geodata(
    preset: Preset,
    data_dir: Path,
    *,
    env: Mapping[str, str] = os.environ,
    now: Callable[[], datetime] = _utc_now,
    fetch: Callable[[str], bytes] = fetch_url,
    max_age: timedelta = timedelta(hours=24),
) -> GeodataFiles:
    """The geosite.dat and geoip.dat to render `preset` with (see the module docstring for the rules)."""
    from_env = _from_env(env)
    if from_env is not None:
        return from_env
    directory = data_dir / "geodata" / preset.name
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OvpnError(f"cannot create the geodata cache {directory}: {exc.strerror or exc}") from exc
    meta_path = directory / META_FILE
    meta = _read_meta(meta_path)
    moment = _as_utc(now())
    plan = (
        (GEOSITE_FILE, env.get(ENV_GEOSITE_URL) or preset.feed.geosite_url, preset.geosite_categories()),
        (GEOIP_FILE, env.get(ENV_GEOIP_URL) or preset.feed.geoip_url, preset.geoip_categories()),
    )
    outcomes: list[_Outcome] = []
    for name, url, required in plan:
        outcomes.append(_ensure(directory / name, url, required, meta, moment, fetch, max_age, preset.name))
    if any(outcome.downloaded for outcome in outcomes):
        document = {name: entry.to_json() for name, entry in sorted(meta.items())}
        try:
            replace_file(meta_path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), 0o644)
        except OSError as exc:
            raise OvpnError(f"cannot write {meta_path}: {exc.strerror or exc}") from exc
    times = [outcome.fetched_at for outcome in outcomes]
    warnings = [outcome.warning for outcome in outcomes if outcome.warning]
    return GeodataFiles(
        geosite=directory / GEOSITE_FILE,
        geoip=directory / GEOIP_FILE,
        source="download" if any(outcome.downloaded for outcome in outcomes) else "cache",
        fetched_at=None if None in times else min(t for t in times if t is not None),
        warning="; ".join(warnings) if warnings else None,
    )


def load_geodata_set(files: GeodataFiles) -> GeodataSet:
    """Read both files into a `GeodataSet` (error messages name the environment paths when used)."""
    try:
        geosite = files.geosite.read_bytes()
        geoip = files.geoip.read_bytes()
    except OSError as exc:
        raise OvpnError(f"cannot read geodata: {exc}") from exc
    if files.source == "env":
        return GeodataSet(geosite, geoip, str(files.geosite), str(files.geoip))
    return GeodataSet(geosite, geoip)
