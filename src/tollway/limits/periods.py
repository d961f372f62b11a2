"""Budget periods: calendar days, weeks (from Monday) and months, in a configured time zone
(UTC unless configured), each named by its first day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class Period:
    """One period: its name (the first day, ISO) and its bounds in epoch seconds."""

    label: str
    start: float
    end: float


def period_at(kind: str, zone: ZoneInfo, now: float) -> Period:
    """The `kind` period (day, week or month) that holds `now`, in `zone`."""
    local = datetime.fromtimestamp(now, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        start, end = day, day + timedelta(days=1)
    elif kind == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif kind == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown budget period {kind!r} (choose from {', '.join(PERIODS)})")
    # Dates, not durations: a day across a DST change is 23 or 25 hours long.
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return Period(start.date().isoformat(), start.timestamp(), end.timestamp())
