"""Validation of every operator-supplied value that later reaches a config file, a shell or a URL."""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import date

from ovpn.core.model import MAX_PRIORITY, MAX_QUOTA_BYTES, MIN_QUOTA_BYTES
from ovpn.errors import InvalidInput

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?\Z")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+\Z")
# An image reference ends up inside `${VAR:-default}` in Compose files: no spaces, quotes, `$` or braces.
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9.-]{1,190}\Z")
# A last label that the C resolver reads as a number: decimal, octal (leading 0) or hex with its 0x prefix.
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)\Z")
GIB = 1024**3


def server_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise InvalidInput(
            f"invalid server name {value!r}",
            "use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    return value


def username(value: str) -> str:
    if not _USERNAME_RE.match(value):
        raise InvalidInput(
            f"invalid username {value!r}",
            "use 1-64 letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
        )
    return value


def email(value: str) -> str:
    if not _EMAIL_RE.match(value) or ".." in value:
        raise InvalidInput(f"invalid email {value!r}", "use a plain address such as alice@global")
    return value


def hostname(value: str, what: str = "host") -> str:
    """A DNS name (lower-case, IDN as punycode) or an IP address; the form every tool accepts.

    A name is refused when its last label is numeric (`127.1`, `2130706433`, `1.2.3.4.5`, `999.1.1.1`) or
    hex with the 0x prefix (`0x7f.1`): inet_aton, and so the resolver, reads every such short or hex form as an
    address (`0x7f.1` is 127.0.0.1), and the last part of each is exactly such a label. No real top-level domain
    is numeric or starts with 0x, while hex letters alone (`.cafe`, `.bad`) are real ones and stay accepted. An
    address with a zone (`fe80::1%eth0`) is refused too: the zone is free text and names nothing on another host.
    """
    hint = f"give an IP address (IPv4 as a dotted quad) or a DNS name in lower case (IDN as xn--...) for --{what}"
    if "%" in value:
        raise InvalidInput(f"invalid {what} {value!r}", hint)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.removesuffix(".")  # one trailing dot (the root) is allowed; `a..` has an empty label
    labels = name.split(".") if name else []
    if not labels or len(value) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        raise InvalidInput(f"invalid {what} {value!r}", hint)
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        raise InvalidInput(f"invalid {what} {value!r}: it reads as a number, not a DNS name", hint)
    return name


def port(value: int, what: str = "port") -> int:
    if not 1 <= value <= 65535:
        raise InvalidInput(f"invalid {what} {value}", "a port is a number from 1 to 65535")
    return value


def ssh_user(value: str) -> str:
    if not _SSH_USER_RE.match(value):
        raise InvalidInput(f"invalid SSH user {value!r}", "use a POSIX user name such as root or deploy")
    return value


def xray_version(value: str) -> str:
    value = value.removeprefix("v")
    if not _VERSION_RE.match(value):
        raise InvalidInput(
            f"invalid Xray version {value!r}", "give a release such as 26.7.28 (no 'v' needed)"
        )
    return value


def reality_target(value: str) -> str:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise InvalidInput(
            f"invalid REALITY target {value!r}", "give host:port, for example www.microsoft.com:443"
        )
    hostname(host, "reality-target")
    port(int(port_text), "reality-target port")
    return value


def server_name_indication(value: str) -> str:
    if "*" in value:
        raise InvalidInput(
            f"invalid REALITY server name {value!r}", "wildcards are not allowed; give one name"
        )
    return hostname(value, "reality-server-name")


def image_reference(value: str) -> str:
    if not _IMAGE_RE.match(value):
        raise InvalidInput(
            f"invalid image reference {value!r}",
            "give a plain reference such as registry/name:tag or name@sha256:digest",
        )
    return value


def tag(value: str) -> str:
    if not _TAG_RE.match(value):
        raise InvalidInput(f"invalid tag {value!r}", "tags are lower-case letters, digits, '_' and '-'")
    return value


def tags(values: str) -> tuple[str, ...]:
    """A comma-separated tag list, de-duplicated and sorted."""
    return tuple(sorted({tag(t.strip()) for t in values.split(",") if t.strip()}))


def iso_date(value: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid {what} {value!r}", "use YYYY-MM-DD") from None


def quota_gb(value: float) -> int:
    """GiB (1024^3) to bytes; 0 means the default quota.

    A positive quota is at least MIN_QUOTA_BYTES (1 MiB): a smaller one used to round to 0 bytes and so, silently,
    to the default; any quota that small blocks the user at once and is a slip of the unit (`user disable` blocks).
    """
    top = MAX_QUOTA_BYTES // GIB
    if not math.isfinite(value) or value < 0 or value > top:
        raise InvalidInput(
            f"invalid quota {value:g} GB", f"a quota is 0 (the default) or a number of GB up to {top} (1 PiB)"
        )
    quota = int(value * GIB)
    if value > 0 and quota < MIN_QUOTA_BYTES:
        raise InvalidInput(
            f"invalid quota {value:g} GB: less than 1 MiB",
            "give at least 0.001 GB (1 MiB), or 0 for the default; `ovpn user disable` blocks a user",
        )
    return quota


def priority(value: int) -> int:
    """A backend's place in its proxy's pool; only the order reaches a rendered config."""
    if not 0 <= value <= MAX_PRIORITY:
        raise InvalidInput(
            f"invalid priority {value}",
            f"a priority is 0 to {MAX_PRIORITY}; lower numbers are preferred, the rest are backups",
        )
    return value
