"""Backups on the operator's machine: a verified copy written into a download folder, and a local archive checked
before `server restore` uploads it.

A local archive gets the checks a host archive gets, before anything is sent: its SHA-256 against every digest
there is (the local record, `--digest`, the `.sha256` file beside it), then its entries and its manifest, read
here with Python's tarfile and judged by `backup_archive`. On the host, the uploaded file then goes through the
same digest and GNU tar listing checks as any host archive: that tar is the one that extracts it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ovpn.core.names import BACKUP_DIR
from ovpn.errors import OvpnError
from ovpn.ops import backup_archive as archive_rules
from ovpn.ops.files import write_file

_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f",
            13: "\\r"}  # fmt: skip
_MANIFEST_LIMIT = 64 * 1024


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_folder(path: str) -> Path:
    """The folder a copy goes into, refused unless it exists and this user can write there."""
    if not path.strip():
        raise OvpnError("the download folder's name is empty", "pass a folder, `.` for this one")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise OvpnError(f"the download folder {path} does not exist",
                        f"create it first (mkdir -p {shlex.quote(path)}) or pass another folder")  # fmt: skip
    if not folder.is_dir():
        raise OvpnError(f"{path} is not a folder", "pass the folder to write the copy into")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OvpnError(f"the download folder {path} is not writable", "pass a folder you can write to")
    return folder.absolute()


def save_copy(folder: Path, name: str, data: bytes, digest: str) -> Path:
    """Write `data` as `folder/name` and its `name.sha256` (sha256sum's format), only if it has `digest`."""
    if sha256_of(data) != digest:
        raise OvpnError(f"the copy of {name} does not match its digest {digest}: nothing was written",
                        "the archive changed on the host or the transfer was damaged; download it again")  # fmt: skip
    target = folder / name
    write_file(target, data)
    write_file(folder / f"{name}.sha256", f"{digest}  {name}\n".encode())
    return target


def local_source(source: str) -> Path | None:
    """The file `--from` names on this machine: one that exists here, or any path (with a `/`) outside the host's
    backups folder. None: an archive on the host."""
    path = Path(source).expanduser()
    if os.path.lexists(path) or ("/" in source and not source.startswith(f"{BACKUP_DIR}/")):
        return path
    return None


@dataclass(frozen=True)
class LocalArchive:
    path: Path
    data: bytes
    sha256: str


def check_local_archive(
    path: Path, server: str, role: str, recorded: str | None, given: str | None
) -> LocalArchive:
    """The archive at `path`, once it matches every digest that vouches for it, holds only safe entries and
    names `server` in its manifest."""
    if not archive_rules.ARCHIVE_NAME.match(path.name):
        raise OvpnError(f"{path} is not named like an ovpn backup (SERVER-YYYYMMDDTHHMMSSZ.tar.gz)",
                        "keep the name `ovpn server backup` gave the archive")  # fmt: skip
    data = _read(path)
    actual = sha256_of(data)
    expected = [("the digest recorded when it was taken", recorded), ("--digest", given),
                (f"the {path.name}.sha256 beside it", _side_digest(path))]  # fmt: skip
    if all(value is None for _, value in expected):
        raise OvpnError(f"nothing vouches for {path}: no {path.name}.sha256 beside it and no record of it here",
                        "pass --digest SHA256, as kept when the backup was taken")  # fmt: skip
    for what, value in expected:
        if value is not None and value != actual:
            raise OvpnError(f"{path} does not match {what}: refusing to restore it",
                            "the file was changed or damaged since it was taken; use another copy")  # fmt: skip
    members, manifest = _read_tar(path, data)
    archive_rules.check_members(str(path), members)
    archive_rules.check_origin(
        None if manifest is None else archive_rules.parse_manifest(manifest),
        server,
        role,
        recorded=recorded is not None,
    )
    return LocalArchive(path, data, actual)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise OvpnError(f"{path} is not a file on this machine",
                        "give the path of a downloaded archive, or the name of one on the host")  # fmt: skip
    try:
        return path.read_bytes()
    except OSError as e:
        raise OvpnError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None


def _side_digest(path: Path) -> str | None:
    side = path.with_name(f"{path.name}.sha256")
    if not side.exists():
        return None
    try:
        words = side.read_text(errors="replace").split()
    except OSError as e:
        raise OvpnError(f"cannot read {side}: {e.strerror}", "check the file's permissions") from None
    digest = words[0].lower() if words else ""
    if not archive_rules.DIGEST.match(digest):
        raise OvpnError(f"{side} does not hold a SHA-256", "remove it and pass --digest SHA256 instead")
    return digest


def _read_tar(path: Path, data: bytes) -> tuple[list[archive_rules.Member], str | None]:
    """The entries as `backup_archive` judges them, and the manifest's text (None when there is none)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            entries = tar.getmembers()
            manifest = next((e for e in entries if e.name == archive_rules.MANIFEST_NAME and e.isreg()), None)
            stream = tar.extractfile(manifest) if manifest is not None else None
            text = stream.read(_MANIFEST_LIMIT).decode(errors="replace") if stream is not None else None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise OvpnError(f"{path} is not a readable archive: {e}", "use another copy") from None
    return [_member(e) for e in entries], text


def _member(entry: tarfile.TarInfo) -> archive_rules.Member:
    """An entry as GNU tar's verbose listing with C quoting shows it (`backup_archive.parse_listing`)."""
    kinds = [(entry.isreg, "-"), (entry.isdir, "d"), (entry.issym, "l"), (entry.islnk, "h"), (entry.ischr, "c"),
             (entry.isblk, "b"), (entry.isfifo, "p")]  # fmt: skip
    kind = next((letter for test, letter in kinds if test()), "?")
    mode = kind + stat.filemode(entry.mode & 0o7777)[1:]
    return archive_rules.Member(
        kind, mode, c_quoted(entry.name), c_quoted(entry.linkname) if kind in ("l", "h") else ""
    )


def c_quoted(name: str) -> str:
    """A name as GNU tar's `--quoting-style=c` writes it, without the quotes: `/` and `.` are never escaped."""
    out = []
    for byte in name.encode(tarfile.ENCODING, "surrogateescape"):
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)
