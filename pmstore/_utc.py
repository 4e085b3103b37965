"""UTC instants: the one aware-datetime rule, the hour and day grid, the Unix epoch.

Every public call that takes a time takes a timezone-aware ``datetime`` and
works in UTC; ``aware_utc`` is that rule (a naive datetime is refused, never
guessed). The hour grid is ``time_bucket('1 hour')``'s, the day grid UTC
midnights (the continuous aggregates, ``pmstore refresh`` and ``pmstore
export`` cut there).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Final

from pmstore.errors import ConfigurationError

__all__ = [
    "DAY",
    "HOUR",
    "UNIX_EPOCH",
    "aware_utc",
    "ceil_hour",
    "day_windows",
    "floor_hour",
]

UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)


def aware_utc(name: str, value: object) -> datetime:
    """``value`` in UTC; ConfigurationError naming ``name`` unless an aware datetime."""
    if not isinstance(value, datetime):
        raise ConfigurationError(
            f"{name} must be a timezone-aware datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{name} is a naive datetime ({value.isoformat()}): pass a timezone-aware one, "
            "e.g. datetime(..., tzinfo=datetime.UTC)"
        )
    return value.astimezone(UTC)


def floor_hour(value: datetime) -> datetime:
    """The whole UTC hour holding ``value`` (an aware datetime)."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    """The first whole UTC hour at or after ``value``; ConfigurationError past year 9999."""
    floor = floor_hour(value)
    if floor == value:
        return floor
    try:
        return floor + HOUR
    except OverflowError as exc:
        raise ConfigurationError(f"{value.isoformat()} is out of range") from exc


def day_windows(start: datetime, end: datetime) -> Iterator[tuple[date, datetime, datetime]]:
    """(UTC day, window start, window end) for every UTC day overlapping [start, end):
    the range cut at UTC midnights (aware datetimes, in UTC)."""
    day = datetime(start.year, start.month, start.day, tzinfo=UTC)
    while day < end:
        yield day.date(), max(start, day), min(end, day + DAY)
        day += DAY
