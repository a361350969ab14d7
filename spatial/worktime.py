"""Working time: deadlines, time remaining and lateness of a case step on a Chinese work calendar.

Case time limits (GB/T 30428 digital city management; 网格事件) are counted in *working time*: register and
dispatch within 30 working minutes, verify within 2 working hours, handle within 3 working days. This module
turns a start instant and a :class:`Limit` into a deadline, and measures working minutes between two instants.
Pure Python, no database: the store keeps the admin's calendar entries and passes a :class:`WorkCalendar`.

**Working days.** Monday to Friday, except public holidays, plus the adjusted working weekends (调休, e.g.
Sunday 2025-09-28 and Saturday 2025-10-11 around National Day). The official days come from the
``chinese-calendar`` package (State Council notices; it covers 2004 up to the last year it was released for);
an admin adds a later year by hand as ``holidays`` (days off) and ``workdays`` (调休 working days), which take
precedence over the package. For a year neither knows, plain Monday–Friday is assumed, and
:meth:`WorkCalendar.assumed` says so, so that pages can warn that the calendar needs the year.

**Working hours.** ``periods`` of each working day, local time (default 09:00–12:00 and 14:00–18:00: 7 hours,
the common office hours of a street office 街道办). Instants are timezone-aware; local time is
``Asia/Shanghai`` (UTC+8 all year, no daylight saving). Naive datetimes are refused (ValueError).

**Limits.** ``Limit(n, "work_minutes" | "work_hours" | "work_days" | "natural_minutes" | "natural_hours")``.
A working day is as many working minutes as its periods hold (420 by default), so "3 working days" from
Tuesday 10:00 ends Friday 10:00, and from a report made at night the clock starts when the office opens.
A deadline that falls exactly at the end of a period is that end (18:00), never the next opening. Natural
limits (urgent safety cases handled round the clock) count every minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")
Unit = Literal["work_minutes", "work_hours", "work_days", "natural_minutes", "natural_hours"]
UNITS: tuple[str, ...] = ("work_minutes", "work_hours", "work_days", "natural_minutes", "natural_hours")
UNIT_LABELS = {"work_minutes": ("工作分钟", "working minutes"), "work_hours": ("工作小时", "working hours"),
               "work_days": ("工作日", "working days"), "natural_minutes": ("自然分钟", "minutes"),
               "natural_hours": ("自然小时", "hours")}
DEFAULT_PERIODS = ((time(9, 0), time(12, 0)), (time(14, 0), time(18, 0)))
MAX_SCAN_DAYS = 3 * 366  # a limit needing more calendar days than this is refused (no working time configured?)


@dataclass(frozen=True)
class Limit:
    """A time limit: ``amount`` (≥ 0) of ``unit``."""

    amount: int
    unit: Unit = "work_minutes"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown time-limit unit {self.unit!r}: use one of {', '.join(UNITS)}")
        if self.amount < 0:
            raise ValueError(f"a time limit cannot be negative, got {self.amount}")

    @property
    def natural(self) -> bool:
        return self.unit.startswith("natural")

    def label(self, lang: str = "zh") -> str:
        zh, en = UNIT_LABELS[self.unit]
        return f"{self.amount} {zh}" if lang == "zh" else f"{self.amount} {en}"


@lru_cache(maxsize=1)
def _official_days() -> tuple[frozenset[date], frozenset[date], int, int]:
    """chinese-calendar's days off and adjusted working days, and the first and last year it knows (its own
    ``is_workday`` checks that range by a min/max over every holiday on each call: too slow for a calendar of
    years, so its tables are read once)."""
    from chinese_calendar.constants import holidays, workdays

    return frozenset(holidays), frozenset(workdays), min(holidays).year, max(holidays).year


def _official(day: date) -> bool | None:
    """Whether ``day`` is an official working day, or None when chinese-calendar has no data for its year (the
    rule of ``chinese_calendar.is_workday``: an adjusted working day, or Monday–Friday and no holiday)."""
    holidays, workdays, first, last = _official_days()
    if not first <= day.year <= last:
        return None
    return day in workdays or (day.weekday() <= 4 and day not in holidays)


@dataclass(frozen=True)
class WorkCalendar:
    """Working days and hours. ``holidays``/``workdays``: the admin's days off and 调休 working days, which
    override the official calendar; ``periods``: (start, end) local times of a working day, in order,
    non-overlapping."""

    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("a work calendar needs at least one working period per day")
        previous = time(0, 0)
        for start, end in self.periods:
            if not start < end or start < previous:
                raise ValueError(f"working periods must be in order and not overlap, got {start:%H:%M}–{end:%H:%M}")
            previous = end
        if self.holidays & self.workdays:
            clash = min(self.holidays & self.workdays)
            raise ValueError(f"{clash} is both a day off and a working day")
        object.__setattr__(self, "_day_minutes", sum(_minutes(start, end) for start, end in self.periods))
        object.__setattr__(self, "_period_seconds", tuple(
            (s.hour * 3600 + s.minute * 60, e.hour * 3600 + e.minute * 60) for s, e in self.periods))
        object.__setattr__(self, "_terms", {})  # day -> (working days before it, is it one): see day_terms

    @property
    def minutes_per_day(self) -> int:
        """Working minutes of one working day (420 for the default periods)."""
        return self._day_minutes

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        official = _official(day)
        return day.weekday() < 5 if official is None else official

    def assumed(self, days: Iterable[date]) -> list[int]:
        """Years among ``days`` that neither the admin nor chinese-calendar know (Monday–Friday assumed)."""
        known = {d.year for d in self.holidays | self.workdays}
        return sorted({d.year for d in days if d.year not in known and _official(d) is None})

    def _open(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of ``day`` (local, aware); none on a day off."""
        if not self.is_workday(day):
            return []
        return [(datetime.combine(day, s, LOCAL), datetime.combine(day, e, LOCAL)) for s, e in self.periods]

    def deadline(self, start: datetime, limit: Limit) -> datetime:
        """The instant ``limit`` after ``start`` (aware; returned in local time). Working limits count only
        working minutes: from outside working time the clock starts at the next opening."""
        start = _local(start)
        if limit.unit == "natural_minutes":
            return start + timedelta(minutes=limit.amount)
        if limit.unit == "natural_hours":
            return start + timedelta(hours=limit.amount)
        minutes = limit.amount * {"work_minutes": 1, "work_hours": 60, "work_days": self.minutes_per_day}[limit.unit]
        return self.add_working_minutes(start, minutes)

    def add_working_minutes(self, start: datetime, minutes: float) -> datetime:
        """``start`` plus ``minutes`` (≥ 0) of working time; 0 gives ``start`` itself."""
        cursor = _local(start)
        left = timedelta(minutes=minutes)
        if left <= timedelta(0):
            return cursor
        day = cursor.date()
        for _ in range(MAX_SCAN_DAYS):
            for open_, close in self._open(day):
                begin = max(open_, cursor)
                if begin >= close:
                    continue
                if begin + left <= close:
                    return begin + left
                left -= close - begin
            day += timedelta(days=1)
        raise ValueError(f"{minutes:g} working minutes do not fit in {MAX_SCAN_DAYS} days of this calendar")

    def working_minutes(self, a: datetime, b: datetime) -> float:
        """Working minutes from ``a`` to ``b`` (negative when ``b`` is before ``a``): the difference of
        :meth:`clock` at both, so that a span of years costs no more than one of minutes."""
        return self.clock(b) - self.clock(a)

    def clock(self, instant: datetime) -> float:
        """Working minutes from 1 January :data:`CLOCK_BASE_YEAR` 00:00 local time to ``instant`` (aware): the
        working days before its day times :attr:`minutes_per_day`, plus the working minutes of its own day
        before it. Asia/Shanghai keeps UTC+8 all year, so local days start at UTC 16:00 of the day before. For
        an instant before the base year the days are counted back, one by one."""
        seconds = _aware(instant).timestamp() + _UTC_OFFSET_S
        ordinal, in_day = divmod(seconds, 86_400)
        before, workday = self.day_terms(date.fromordinal(int(ordinal) + _EPOCH_ORDINAL))
        today = 0.0
        if workday:
            for start_s, end_s in self._period_seconds:
                if in_day > start_s:
                    today += min(in_day, end_s) - start_s
        return before * self._day_minutes + today / 60

    def day_terms(self, day: date) -> tuple[int, bool]:
        """What :meth:`clock` takes from an instant's day: the working days from 1 January
        :data:`CLOCK_BASE_YEAR` to the day before ``day`` (negative before it), and whether ``day`` is a working
        day (only then do the working seconds of the day before the instant count). So that a sum of clocks over
        many instants can be taken per day: Σ clock = Σ over days of (instants that day) × working days before
        × :attr:`minutes_per_day`, plus on working days (their working seconds before the instants, summed) / 60
        (:attr:`period_seconds`). Remembered per calendar (a page of cases asks for the same few days again and
        again); the calendar is immutable, so the answers never go stale (a changed calendar is a new instance)."""
        found = self._terms.get(day)
        if found is None:
            if len(self._terms) > 100_000:  # a calendar kept for long (spatial.store.cases.work_calendar): bounded
                self._terms.clear()
            found = self._terms[day] = (self._workdays_before(day), self.is_workday(day))
        return found

    @property
    def period_seconds(self) -> tuple[tuple[int, int], ...]:
        """The working periods as (start, end) seconds after local midnight (whole minutes, as :meth:`clock`
        counts them)."""
        return self._period_seconds

    def _workdays_before(self, day: date) -> int:
        """Working days from 1 January :data:`CLOCK_BASE_YEAR` to the day before ``day`` (negative before it)."""
        if day.year < CLOCK_BASE_YEAR:
            return -sum(self.is_workday(d) for d in _days(day, date(CLOCK_BASE_YEAR, 1, 1)))
        prefix = _year_prefix(self.holidays, self.workdays, day.year)
        return _years_before(self.holidays, self.workdays, day.year) + prefix[day.timetuple().tm_yday - 1]

    def remaining(self, now: datetime, deadline: datetime, *, natural: bool = False) -> float:
        """Minutes left until ``deadline`` (negative: overdue by that much), in working minutes unless
        ``natural``."""
        if natural:
            return (_local(deadline) - _local(now)).total_seconds() / 60
        return self.working_minutes(now, deadline)


CLOCK_BASE_YEAR = 2000
_UTC_OFFSET_S = 8 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _days(first: date, stop: date) -> Iterable[date]:
    """Every day from ``first`` up to the day before ``stop``."""
    for n in range((stop - first).days):
        yield first + timedelta(days=n)


@lru_cache(maxsize=4096)
def _year_prefix(holidays: frozenset[date], workdays: frozenset[date], year: int) -> tuple[int, ...]:
    """Working days of ``year`` before each of its days: entry i counts the first i days (i = 0 … days)."""
    calendar = WorkCalendar(holidays=holidays, workdays=workdays)
    counts = [0]
    for day in _days(date(year, 1, 1), date(year + 1, 1, 1)):
        counts.append(counts[-1] + calendar.is_workday(day))
    return tuple(counts)


@lru_cache(maxsize=4096)
def _years_before(holidays: frozenset[date], workdays: frozenset[date], year: int) -> int:
    """Working days from 1 January :data:`CLOCK_BASE_YEAR` to the end of ``year`` - 1."""
    total = 0
    for y in range(CLOCK_BASE_YEAR, year):
        total += _year_prefix(holidays, workdays, y)[-1]
    return total


def _minutes(start: time, end: time) -> int:
    return (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)


def _aware(instant: datetime) -> datetime:
    """``instant`` itself; ValueError when it is naive."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instants must carry a time zone (e.g. 2026-10-09T17:30:00+08:00)")
    return instant


def _local(instant: datetime) -> datetime:
    return _aware(instant).astimezone(LOCAL)
