"""User links for a server: the share link, the client config, and QR codes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import qrcode
from qrcode.image.pure import PyPNGImage

from ovpn.core.links import client_config, vless_link
from ovpn.core.model import Server, User
from ovpn.ops.app import App
from ovpn.ops.files import ensure_folder, write_file

QR_PNG_PIXELS = 512


@dataclass(frozen=True)
class UserLink:
    server: Server
    user: User
    link: str


def links_for(
    app: App, server_name: str, usernames: list[str] | None = None, tag: str | None = None
) -> list[UserLink]:
    with app.reading() as repo:
        server = repo.server(server_name)
        users = [repo.user(u) for u in usernames] if usernames is not None else repo.users(tag)
    return [UserLink(server, u, vless_link(server, u)) for u in users]


def client_json(link: UserLink, socks_port: int) -> dict[str, object]:
    return client_config(link.server, link.user, socks_port)


def _qr(data: str, border: int) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_terminal(data: str) -> str:
    out = io.StringIO()
    _qr(data, border=2).print_ascii(out=out, invert=True)
    return out.getvalue()


def qr_png(data: str) -> bytes:
    code = _qr(data, border=4)
    modules = code.modules_count + 2 * code.border
    code.box_size = max(1, QR_PNG_PIXELS // modules)
    out = io.BytesIO()
    code.make_image(image_factory=PyPNGImage).save(out)
    return out.getvalue()


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read (links are credentials), creating its folder if missing."""
    ensure_folder(path.parent)
    write_file(path, content, mode=0o600)
