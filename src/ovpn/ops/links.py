"""User links for a server: the share link, the client config, QR codes, and a tag's links as files."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import qrcode
from qrcode.image.pure import PyPNGImage

from ovpn.core.links import client_config, vless_link
from ovpn.core.model import Server, User
from ovpn.core.users import inactive_reason
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.ops.files import ensure_folder, write_file

QR_PNG_PIXELS = 512
LinkFormat = Literal["uri", "xray-json"]


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


def client_json_text(link: UserLink, socks_port: int) -> str:
    return json.dumps(client_json(link, socks_port), indent=2)


def user_link(app: App, server_name: str, username: str, *, force: bool, now: datetime) -> UserLink:
    """One user's link; refused for a user who cannot connect (disabled or expired) unless `force`, which warns."""
    (item,) = links_for(app, server_name, usernames=[username])
    reason = inactive_reason(item.user, now)
    if reason and not force:
        raise OvpnError(
            f"{item.user.username} is {reason}: the link would not connect",
            "`ovpn user enable` or `ovpn user expiry-set` first, or pass --force to print it anyway",
        )
    if reason:
        app.warn(
            f"{item.user.username} is {reason}: the link will not connect until the user is active again"
        )
    return item


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


def link_files(link: UserLink, fmt: LinkFormat, socks_port: int) -> dict[str, bytes]:
    """The files a user's link is written as, named SERVER-USERNAME: `.json` (the client config) for xray-json,
    else `.txt` (the share link) and `.png` (its QR code)."""
    stem = f"{link.server.name}-{link.user.username}"
    if fmt == "xray-json":
        return {f"{stem}.json": (client_json_text(link, socks_port) + "\n").encode()}
    return {f"{stem}.txt": (link.link + "\n").encode(), f"{stem}.png": qr_png(link.link)}


@dataclass(frozen=True)
class TagLinks:
    written: int
    skipped: list[str]


def write_tag_links(
    app: App, server_name: str, tag: str, directory: Path, fmt: LinkFormat, socks_port: int, *, force: bool,
    now: datetime,
) -> TagLinks:  # fmt: skip
    """Write the links of every user with `tag` into `directory` (files only their owner can read). A disabled or
    expired user is skipped with a warning, or written with one when `force`."""
    links = links_for(app, server_name, tag=tag)
    if not links:
        raise OvpnError(f"no user has the tag {tag!r}", "see `ovpn user list`")
    skipped = []
    for item in links:
        reason = inactive_reason(item.user, now)
        if reason:
            app.warn(
                f"{item.user.username} is {reason}: " + ("its link will not connect" if force else "skipped")
            )
            if not force:
                skipped.append(item.user.username)
                continue
        for name, content in link_files(item, fmt, socks_port).items():
            write_private(directory / name, content)
    return TagLinks(len(links) - len(skipped), skipped)
