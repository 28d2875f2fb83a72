"""Which user identities Xray can tell apart.

Xray lower-cases an email before it compares it, so `alice@global` and `ALICE@global` are one user to it, and a
config that lists both is refused. A few emails belong to ovpn itself (RESERVED_EMAILS: the relay identity of
proxies on their backends, the agent's runtime marker); a user holding one breaks every server's config or the
agent's sync. Usernames are compared the same way: they name link files, which collide on case-insensitive file
systems, and an operator cannot tell `Alice` from `alice` in a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ovpn.core.model import RESERVED_EMAILS, User
from ovpn.errors import InvalidInput

Field = Literal["username", "email"]


def identity_key(value: str) -> str:
    """The form two identities are compared in (Xray's own: ASCII lower case; identities are ASCII)."""
    return value.lower()


def is_reserved_email(value: str) -> bool:
    return identity_key(value) in RESERVED_EMAILS


@dataclass(frozen=True)
class Clash:
    """Users Xray cannot tell apart: `usernames` share `field` apart from case, or one holds a reserved email."""

    field: Field
    value: str
    usernames: tuple[str, ...]
    reserved: bool = False

    def describe(self) -> str:
        if self.reserved:
            return f"user {self.usernames[0]} has the email {self.value}, which is reserved for ovpn itself"
        return (
            f"users {' and '.join(self.usernames)} have the same {self.field} apart from case ({self.value})"
        )

    def extra_users(self) -> tuple[str, ...]:
        """The users to take out; a reserved email's holder, else all but the first already in lower case."""
        return self.usernames if self.reserved else self.usernames[1:]


def _value(user: User, field: Field) -> str:
    return user.username if field == "username" else user.email


def _ordered(users: Iterable[User], field: Field) -> list[User]:
    """Users whose value is already in lower case first: they are the likely originals and stay."""
    return sorted(users, key=lambda u: (_value(u, field) != identity_key(_value(u, field)), u.username))


def identity_clashes(users: Iterable[User]) -> list[Clash]:
    """Every clash among `users`, reserved emails first, then usernames, then emails."""
    users = list(users)
    clashes = [
        Clash("email", identity_key(u.email), (u.username,), reserved=True)
        for u in sorted(users, key=lambda u: u.username)
        if is_reserved_email(u.email)
    ]
    fields: tuple[Field, ...] = ("username", "email")
    for field in fields:
        groups: dict[str, list[User]] = {}
        for u in users:
            groups.setdefault(identity_key(_value(u, field)), []).append(u)
        for key, group in sorted(groups.items()):
            if len(group) > 1:
                clashes.append(Clash(field, key, tuple(u.username for u in _ordered(group, field))))
    return clashes


def require_new_identity(existing: Sequence[User], candidate: User) -> None:
    """Refuse a new user whose username or email another user has apart from case, or a reserved email."""
    if is_reserved_email(candidate.email):
        raise InvalidInput(
            f"the email {candidate.email} is reserved for ovpn itself", "choose another --email"
        )
    fields: tuple[Field, ...] = ("username", "email")
    for field in fields:
        wanted = identity_key(_value(candidate, field))
        for user in existing:
            if identity_key(_value(user, field)) == wanted:
                raise InvalidInput(
                    f"a user with {field} {_value(user, field)!r} already exists "
                    "(Xray compares identities without case)",
                    f"choose another --{field}",
                )


def clash_hint(clashes: Sequence[Clash]) -> str:
    extra = sorted({name for clash in clashes for name in clash.extra_users()})
    commands = " and ".join(f"`ovpn user rm --username {name}`" for name in extra)
    return (
        f"run {commands}, then add {'it' if len(extra) == 1 else 'each'} again with another --username or "
        "--email (note the UUID `ovpn user show` prints first: `--uuid` with it keeps the links working)"
    )


def require_distinct_identities(users: Iterable[User]) -> None:
    """Refuse to render for users Xray cannot tell apart (state written before ovpn refused such users)."""
    clashes = identity_clashes(users)
    if clashes:
        raise InvalidInput(
            "Xray cannot tell these users apart: " + "; ".join(c.describe() for c in clashes),
            clash_hint(clashes),
        )


def clash_warnings(users: Iterable[User]) -> list[str]:
    """One line per clash, with the commands that fix them, for a warning after the state is opened."""
    clashes = identity_clashes(users)
    if not clashes:
        return []
    return [f"{c.describe()}: servers refuse to render until this is fixed" for c in clashes] + [
        clash_hint(clashes)
    ]


def past_expiry_warning(user: User, now: datetime) -> str | None:
    """A user saved with an expiry already past is kept (the operator may mean it) but never admitted."""
    if user.expiry is None or not user.is_expired(now):
        return None
    return (
        f"{user.username}'s expiry {user.expiry.isoformat()} is already past: the user is saved but cannot "
        "connect until `ovpn user expiry-set` gives a later day"
    )


def inactive_reason(user: User, now: datetime) -> str | None:
    """Why a user's link would not connect now (None: it would)."""
    if user.is_expired(now) and user.expiry is not None:
        return f"expired on {user.expiry.isoformat()}"
    return None if user.enabled else "disabled"
