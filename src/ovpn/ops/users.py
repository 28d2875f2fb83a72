"""Global users: one identity on every server."""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Callable
from datetime import date

from ovpn.core import validation
from ovpn.core.model import User, default_email
from ovpn.core.users import clash_warnings, require_new_identity
from ovpn.errors import OvpnError
from ovpn.ops.app import App


def _uuid(value: str | None) -> str:
    if value is None:
        return str(uuidlib.uuid4())
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise OvpnError(f"invalid UUID {value!r}", "give a UUID such as 3f1c...-... or omit --uuid") from None


def add_user(
    app: App,
    username: str,
    *,
    uuid: str | None = None,
    email: str | None = None,
    expiry: date | None = None,
    quota_bytes: int | None = None,
    notes: str = "",
    tags: tuple[str, ...] = (),
) -> User:
    name = validation.username(username)
    user = User(
        username=name,
        uuid=_uuid(uuid),
        email=validation.email(email or default_email(name)),
        expiry=expiry,
        quota_bytes=quota_bytes or None,
        notes=notes,
        tags=tags,
    )
    with app.writing() as repo:
        require_new_identity(repo.users(), user)
        repo.add_user(user)
    return user


def change_user(app: App, username: str, change: Callable[[User], User]) -> User:
    with app.writing() as repo:
        updated = change(repo.user(username))
        repo.update_user(updated)
    return updated


def set_enabled(app: App, username: str, enabled: bool) -> User:
    return change_user(app, username, lambda u: dataclasses.replace(u, enabled=enabled))


def set_expiry(app: App, username: str, expiry: date | None) -> User:
    """Setting a date or clearing it re-enables the user: the operator is extending access."""
    return change_user(app, username, lambda u: dataclasses.replace(u, expiry=expiry, enabled=True))


def set_quota(app: App, username: str, quota_bytes: int) -> User:
    return change_user(app, username, lambda u: dataclasses.replace(u, quota_bytes=quota_bytes or None))


def remove_user(app: App, username: str) -> None:
    with app.writing() as repo:
        repo.user(username)
        repo.remove_user(username)


def list_users(app: App, tag: str | None = None) -> list[User]:
    with app.reading() as repo:
        return repo.users(tag)


def get_user(app: App, username: str) -> User:
    with app.reading() as repo:
        return repo.user(username)


def identity_clash_warnings(app: App) -> list[str]:
    """Lines naming users that state written before ovpn refused them holds and Xray cannot tell apart."""
    with app.reading() as repo:
        return clash_warnings(repo.users())
