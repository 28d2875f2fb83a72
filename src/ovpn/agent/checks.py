"""What the agent accepts in a request: each check returns the value or raises ApiError with a 400 that says why."""

from __future__ import annotations

import re
import uuid as uuid_module
from collections.abc import Iterator
from datetime import date
from http import HTTPStatus
from typing import Any

from ovpn.agent.store import Policy
from ovpn.core.model import MAX_QUOTA_BYTES, RESERVED_EMAILS


class ApiError(Exception):
    """A request the agent refuses: the status, the message, and extra fields for the JSON answer."""

    def __init__(self, status: HTTPStatus, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# Matched whole (fullmatch): `$` would let a trailing newline through.
_EMAIL = re.compile(r"[^\s\"\\>\x00-\x1f\x7f]{1,254}")
_USERNAME = re.compile(r"[^\x00-\x1f\x7f]{1,254}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


def _bad(message: str, **extra: object) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, **extra)


def _field(item: dict[str, Any], name: str, where: str) -> Any:
    if name not in item:
        raise _bad(f"{where}: missing field {name!r}")
    return item[name]


def _utf8(value: str) -> bool:
    """JSON can carry lone surrogates (`"\\ud800"`), which no UTF-8 store or log can take."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def iso_date(value: object) -> str | None:
    """`value` as a YYYY-MM-DD calendar date, or None when it is not one."""
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    return None


def check_email(value: object, where: str) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value) or ">>>" in value or not _utf8(value):
        raise _bad(f"{where}: email must be a non-empty string without spaces or quotes")
    return value


def check_uuid(value: object, where: str) -> str:
    try:
        return str(uuid_module.UUID(str(value))) if isinstance(value, str) else ""
    except ValueError:
        pass
    raise _bad(f"{where}: uuid must be a UUID string")


def check_expiry(value: object, where: str) -> str | None:
    if value is None:
        return None
    expiry = iso_date(value)
    if expiry is None:
        raise _bad(f"{where}: expiry must be null or a date YYYY-MM-DD")
    return expiry


def check_quota(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(f"{where}: quota_bytes must be null (the default) or a positive integer")
    if value > MAX_QUOTA_BYTES:
        raise _bad(f"{where}: quota_bytes must be at most {MAX_QUOTA_BYTES} (1 PiB)")
    return value


def check_bool(value: object, where: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{where}: {name} must be true or false")
    return value


def _user_items(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The body's `users` list, each object with where it stands (`users[i]`) for the messages, in order: the
    first bad item is the one reported."""
    users = body.get("users")
    if not isinstance(users, list):
        raise _bad("users must be a list")
    for index, item in enumerate(users):
        where = f"users[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object")
        yield where, item


def parse_policies(body: dict[str, Any]) -> tuple[list[Policy], int | None]:
    """POST /users/sync: every user's policy, and the default quota."""
    policies: list[Policy] = []
    seen: set[str] = set()
    for where, item in _user_items(body):
        email = check_email(_field(item, "email", where), where)
        if email.lower() in seen:
            raise _bad(f"{where}: duplicate email {email!r}")
        if email.lower() in RESERVED_EMAILS:
            raise _bad(f"{where}: {email} is reserved and cannot be a user")
        seen.add(email.lower())
        username = item.get("username", email.split("@")[0])
        if not isinstance(username, str) or not _USERNAME.fullmatch(username) or not _utf8(username):
            raise _bad(f"{where}: username must be a non-empty string without control characters")
        policies.append(
            Policy(
                email=email,
                username=username,
                uuid=check_uuid(_field(item, "uuid", where), where),
                enabled=check_bool(_field(item, "enabled", where), where, "enabled"),
                expiry=check_expiry(item.get("expiry"), where),
                quota_bytes=check_quota(item.get("quota_bytes"), where),
            )
        )
    return policies, check_quota(body.get("default_quota_bytes"), "default_quota_bytes")


def parse_quotas(body: dict[str, Any]) -> tuple[dict[str, int | None], int | None]:
    """POST /quota/sync: each listed user's quota (None: the default), and the default quota."""
    quotas = {}
    for where, item in _user_items(body):
        quotas[check_email(_field(item, "email", where), where)] = check_quota(item.get("quota_bytes"), where)
    return quotas, check_quota(body.get("default_quota_bytes"), "default_quota_bytes")


def request_email(body: dict[str, Any]) -> str:
    """The `email` of a request about one user."""
    return check_email(_field(body, "email", "request"), "request")
