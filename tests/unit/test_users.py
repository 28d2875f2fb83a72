from datetime import UTC, date, datetime, time, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ovpn.core.model import DEFAULT_QUOTA_BYTES, User


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
