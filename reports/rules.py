"""Pure decisions of the reports: who may see them, which period a request
means. No writes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from accounts import roles
from reports.errors import InvalidDate, InvalidGrouping, PeriodReversed, PeriodTooLong

DEFAULT_DAYS = 7
GROUPINGS = ("agent", "queue")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # ASCII digits only ("²" is a digit to str.isdigit)


def may_see_reports(user) -> bool:
    """Reports and exports are for supervisors only: they cover every buyer,
    merchant and agent, so no narrower role gets a scoped copy."""
    return bool(user and user.is_authenticated and roles.is_supervisor(user))


def max_days() -> int:
    return int(getattr(settings, "REPORT_MAX_DAYS", 366))


@dataclass(frozen=True)
class Period:
    """Whole local days ``first``..``last`` (both included) and the same number
    of days just before them, which ``top_categories`` compares against."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.first, time.min))

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after ``last``."""
        return timezone.make_aware(datetime.combine(self.last + timedelta(days=1), time.min))

    @property
    def previous(self) -> Period:
        return Period(first=self.first - timedelta(days=self.days), last=self.first - timedelta(days=1))

    def as_dict(self) -> dict:
        previous = self.previous
        return {"from": self.first.isoformat(), "to": self.last.isoformat(),
                "previous_from": previous.first.isoformat(), "previous_to": previous.last.isoformat()}


def _date(raw, *, field: str) -> date | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _DATE.match(raw):
        raise InvalidDate(f"'{field}' is not a date (YYYY-MM-DD).", field=field)
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidDate(f"'{field}' is not a calendar date.", field=field) from None
    if not 2000 <= value.year <= 2999:  # keeps the previous period and midnight after 'to' computable
        raise InvalidDate(f"'{field}' is out of range.", field=field)
    return value


def parse_period(raw_from, raw_to, *, today: date | None = None) -> Period:
    """``from``/``to`` as local dates, both included; by default the last
    ``DEFAULT_DAYS`` days up to today. Refuses (400) what is not a date, a
    period that runs backwards and one longer than ``REPORT_MAX_DAYS``."""
    first, last = _date(raw_from, field="from"), _date(raw_to, field="to")
    today = today or timezone.localdate()
    if last is None:
        last = max(today, first) if first else today
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodReversed()
    period = Period(first=first, last=last)
    if period.days > max_days():
        raise PeriodTooLong(f"The period covers {period.days} days; at most {max_days()}.", max_days=max_days())
    return period


def parse_group_by(raw) -> str | None:
    if raw in (None, ""):
        return None
    if raw not in GROUPINGS:
        raise InvalidGrouping()
    return raw


def percentile(sorted_values: list[float], p: int) -> float | None:
    """Nearest rank: the smallest value with at least ``p`` % of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, -(-p * len(sorted_values) // 100))  # ceil(p·n/100)
    return sorted_values[rank - 1]


def pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def change_pct(now: int, before: int) -> float | None:
    """Growth against the previous period; None when there was nothing before (new)."""
    return round(100.0 * (now - before) / before, 1) if before else None
