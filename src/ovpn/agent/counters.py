"""The names of Xray's per-user traffic counters: `user>>>EMAIL>>>traffic>>>uplink` (or `downlink`)."""

from __future__ import annotations

USER_COUNTER_PREFIX = "user>>>"


def parse_user_counter(name: str) -> tuple[str, str] | None:
    """`user>>>EMAIL>>>traffic>>>uplink` -> (EMAIL, "uplink"); anything else -> None."""
    parts = name.split(">>>")
    if (
        len(parts) != 4
        or parts[0] != "user"
        or parts[2] != "traffic"
        or parts[3] not in ("uplink", "downlink")
    ):
        return None
    return parts[1], parts[3]
