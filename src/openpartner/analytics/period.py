"""Date ranges and exact numbers for analytics.

A range is two calendar dates in UTC, both included: ``to`` covers its whole day, so the range is
the half-open interval ``[from 00:00, to + 1 day 00:00)``. Shares are exact fractions shown as
``"n/d"`` strings with a percentage rounded once (half to even) to two decimals; never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from openpartner.core.errors import ValidationFailed
from openpartner.core.time import utc_now

DEFAULT_DAYS = 30
MAX_DAYS = 731
"""Longest range in days (two years, both ends included): longer ones are refused, so one
request never scans a program's whole history."""


class InvalidRange(ValidationFailed):
    default_code = "invalid_range"


class RangeTooLong(ValidationFailed):
    default_code = "range_too_long"


@dataclass(frozen=True, slots=True)
class Period:
    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: midnight after the last day."""
        return datetime.combine(self.last_day, time.min, UTC) + timedelta(days=1)

    def contains(self, column: Any) -> Any:
        """SQL condition: ``column`` (an aware UTC time) falls inside the range."""
        return (column >= self.start) & (column < self.end)

    def months(self) -> list[str]:
        """Every calendar month (``YYYY-MM``) the range touches, in order."""
        out = []
        year, month = self.first_day.year, self.first_day.month
        while (year, month) <= (self.last_day.year, self.last_day.month):
            out.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def as_dict(self) -> dict[str, str]:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}


def period(first: date | None, last: date | None) -> Period:
    """The range asked for; missing ends default to the last 30 days up to today (UTC)."""
    if last is None:
        last = utc_now().date()
    if first is None:
        if last.toordinal() <= DEFAULT_DAYS:
            raise InvalidRange("to is too early.")
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRange(
            f"from ({first}) is after to ({last}).",
            errors=[{"loc": ["query", "from"], "msg": "after to", "type": "invalid_range"}],
        )
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise RangeTooLong(
            f"The range covers {days} days; at most {MAX_DAYS} are allowed.",
            errors=[{"loc": ["query", "to"], "msg": "range too long", "type": "range_too_long"}],
        )
    if last == date.max:
        raise InvalidRange("to must be before 9999-12-31.")
    return Period(first, last)


def month_of(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"
