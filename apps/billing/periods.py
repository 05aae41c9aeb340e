"""Budget periods: calendar months in the organisation's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone


@dataclass(frozen=True)
class Period:
    """One month of an organisation: ``[start, end)`` as aware datetimes and local dates."""

    key: str  # "YYYY-MM"
    start: dt.datetime
    end: dt.datetime
    start_date: dt.date
    end_date: dt.date  # exclusive: the first day of the next month

    @property
    def last_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=1)

    def elapsed_fraction(self, at: dt.datetime) -> float:
        """How much of the month has passed at ``at`` (0..1)."""
        total = (self.end - self.start).total_seconds()
        done = (min(max(at, self.start), self.end) - self.start).total_seconds()
        return done / total if total else 1.0


def local_date(org, at: dt.datetime | None = None) -> dt.date:
    return (at or timezone.now()).astimezone(org.tzinfo).date()


def period_key(org, at: dt.datetime | None = None) -> str:
    return local_date(org, at).strftime("%Y-%m")


def period_for_date(org, day: dt.date) -> Period:
    start_date = day.replace(day=1)
    end_date = (start_date + dt.timedelta(days=32)).replace(day=1)
    tz = org.tzinfo
    return Period(
        key=start_date.strftime("%Y-%m"),
        start=dt.datetime.combine(start_date, dt.time.min, tzinfo=tz),
        end=dt.datetime.combine(end_date, dt.time.min, tzinfo=tz),
        start_date=start_date,
        end_date=end_date,
    )


def current_period(org, at: dt.datetime | None = None) -> Period:
    """The month containing ``at`` (default now) in the organisation's time zone."""
    return period_for_date(org, local_date(org, at))
