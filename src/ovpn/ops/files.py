"""Files ovpn writes on the operator's machine: bundles, links, inventories.

Every write is atomic (a temporary file or directory beside the target, then a rename), and every OS failure
becomes one line naming the path and a hint, never a traceback. A bundle directory carries a marker so that ovpn
only ever replaces a directory it wrote itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ovpn.atomic import replace_file
from ovpn.errors import OvpnError
from ovpn.render.bundle import Bundle

BUNDLE_MARKER = ".ovpn-bundle"
_MARKER_TEXT = "written by ovpn; the next `ovpn config render` into this directory replaces it whole\n"


def cannot_write(path: Path, error: OSError) -> OvpnError:
    reason = error.strerror or str(error)
    culprit = f" ({error.filename})" if error.filename and str(error.filename) != str(path) else ""
    return OvpnError(
        f"cannot write {path}: {reason}{culprit}", "choose a writable path with an existing parent folder"
    )


def ensure_folder(folder: Path) -> Path:
    """`folder`, created with its missing ancestors."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OvpnError(f"cannot write to {folder}: it is not a folder", "choose another path") from None
    except OSError as e:
        raise cannot_write(folder, e) from None
    return folder


def write_file(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Write `content` to `path` atomically with `mode` (default: only the owner reads it); its folder must exist."""
    parent = path.parent
    if not parent.is_dir():
        raise OvpnError(f"cannot write {path}: {parent} is not a directory", "create it first")
    if path.is_dir():
        raise OvpnError(f"cannot write {path}: it is a folder", "give a file name")
    try:
        replace_file(path, content, mode)
    except OSError as e:
        raise cannot_write(path, e) from None


def _replaceable(out: Path) -> bool:
    """True for a missing or empty folder, or one that ovpn wrote (it holds the marker); refuse anything else."""
    if out.is_symlink():
        raise OvpnError(f"{out} is a symbolic link", "give the real folder, or a new one")
    if not out.exists():
        return False
    if not out.is_dir():
        raise OvpnError(f"{out} is not a folder", "choose a new or empty folder for the bundle")
    try:
        entries = list(out.iterdir())
    except OSError as e:
        raise cannot_write(out, e) from None
    if entries and not (out / BUNDLE_MARKER).is_file():
        raise OvpnError(
            f"{out} is not empty and was not written by ovpn (no {BUNDLE_MARKER} marker): refusing to replace it",
            "choose a new or empty folder for the bundle",
        )
    return True


def write_bundle(bundle: Bundle, out: Path) -> None:
    """Write the bundle as it will sit under /opt/ovpn, replacing a bundle ovpn wrote to `out` before, atomically.

    The marker file is not part of the bundle (deploys never ship it); it only says this folder is ovpn's to replace.
    """
    replace = _replaceable(out)
    parent = ensure_folder(out.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise cannot_write(out, e) from None
    try:
        for rel, f in bundle.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(f.content)
            os.chmod(target, f.mode)
        (staging / BUNDLE_MARKER).write_text(_MARKER_TEXT)
        staging.chmod(0o755)
        if replace:
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            out.rename(old / out.name)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(out, e) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
