import dataclasses
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovpn.core.model import DEFAULT_QUOTA_BYTES, RELAY_EMAIL, RESERVED_EMAILS, User
from ovpn.core.users import (
    clash_hint,
    clash_warnings,
    identity_clashes,
    inactive_reason,
    past_expiry_warning,
    require_distinct_identities,
    require_new_identity,
)
from ovpn.errors import OvpnError


def user(**fields: object) -> User:
    return User(username="u", uuid="00000000-0000-4000-8000-000000000000", email="u@global", **fields)  # type: ignore[arg-type]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
def test_expiry_means_active_through_the_end_of_that_utc_day(day: date) -> None:
    u = user(expiry=day)
    last_second = datetime.combine(day, time(23, 59, 59, 999999), tzinfo=UTC)
    assert u.is_active(last_second)
    assert not u.is_active(last_second + timedelta(microseconds=1))


@given(st.datetimes(timezones=st.just(UTC)), st.booleans())
def test_without_expiry_only_the_enabled_flag_counts(now: datetime, enabled: bool) -> None:
    assert user(enabled=enabled).is_active(now) is enabled


def test_expiry_is_judged_in_utc_not_local_time() -> None:
    u = user(expiry=date(2026, 11, 24))
    moscow = timezone(timedelta(hours=3))
    # 01:00 on the 25th in Moscow is still the 24th in UTC.
    assert u.is_active(datetime(2026, 11, 25, 1, 0, tzinfo=moscow))
    assert not u.is_active(datetime(2026, 11, 25, 3, 0, tzinfo=moscow))


def test_zero_or_missing_quota_means_the_default() -> None:
    assert user().effective_quota_bytes() == DEFAULT_QUOTA_BYTES
    assert user(quota_bytes=5).effective_quota_bytes() == 5


def named(username: str, email: str | None = None, **fields: object) -> User:
    return dataclasses.replace(user(**fields), username=username, email=email or f"{username}@global")


def test_users_apart_only_by_case_clash_and_the_lower_case_one_stays() -> None:
    users = [named("alice"), named("Alice"), named("bob", "ALICE@global"), named("carol")]
    clashes = identity_clashes(users)
    assert [(c.field, c.value, c.usernames) for c in clashes] == [
        ("username", "alice", ("alice", "Alice")),
        ("email", "alice@global", ("alice", "Alice", "bob")),
    ]
    hint = clash_hint(clashes)
    assert "`ovpn user rm --username Alice`" in hint and "`ovpn user rm --username bob`" in hint
    assert "--username alice`" not in hint and "carol" not in hint


@pytest.mark.parametrize("reserved", [*RESERVED_EMAILS, RELAY_EMAIL.upper()])
def test_a_reserved_email_clashes_in_any_case(reserved: str) -> None:
    (clash,) = identity_clashes([named("carol", reserved), named("dave")])
    assert clash.reserved and clash.usernames == ("carol",)
    assert "reserved for ovpn itself" in clash.describe()
    with pytest.raises(OvpnError, match="reserved"):
        require_new_identity([], named("carol", reserved))


def test_distinct_users_render_and_a_clash_is_refused_by_name() -> None:
    require_distinct_identities([named("alice"), named("bob")])
    assert clash_warnings([named("alice"), named("bob")]) == []
    with pytest.raises(OvpnError) as refused:
        require_distinct_identities([named("alice"), named("ALICE", "other@global")])
    assert "users alice and ALICE have the same username apart from case" in refused.value.message
    assert "ovpn user rm --username ALICE" in str(refused.value.hint)


@pytest.mark.parametrize(
    ("candidate", "field"),
    [(named("ALICE", "new@global"), "username"), (named("new", "Alice@GLOBAL"), "email")],
)
def test_a_new_user_may_not_repeat_an_identity_in_another_case(candidate: User, field: str) -> None:
    with pytest.raises(OvpnError, match=f"a user with {field} .* already exists"):
        require_new_identity([named("alice")], candidate)


def test_a_past_expiry_warns_and_today_does_not() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert past_expiry_warning(user(expiry=date(2026, 6, 1)), now) is None
    assert past_expiry_warning(user(), now) is None
    assert "2026-05-31 is already past" in str(past_expiry_warning(user(expiry=date(2026, 5, 31)), now))


def test_why_a_link_would_not_connect() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert inactive_reason(user(), now) is None
    assert inactive_reason(user(enabled=False), now) == "disabled"
    assert inactive_reason(user(expiry=date(2026, 5, 1), enabled=False), now) == "expired on 2026-05-01"
