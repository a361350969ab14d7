"""Working-time deadlines against a table computed by hand on the official calendar (office hours 09:00–12:00,
14:00–18:00): Friday evenings, lunch breaks, the National Day weeks of 2025 and 2026, Spring Festival 2026,
the adjusted working Saturday and Sunday (调休), natural-time limits, and a year the package does not know."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spatial.worktime import LOCAL, Limit, WorkCalendar

CAL = WorkCalendar()


def at(text: str) -> datetime:
    """A local (UTC+8) instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL)


# start (local), amount, unit, expected deadline (local), why
TABLE = [
    ("2026-12-01 10:00", 30, "work_minutes", "2026-12-01 10:30", "inside the morning"),
    ("2026-12-01 11:45", 30, "work_minutes", "2026-12-01 14:15", "across the lunch break"),
    ("2026-12-01 12:30", 30, "work_minutes", "2026-12-01 14:30", "reported at lunch: the clock starts at 14:00"),
    ("2026-12-01 17:50", 30, "work_minutes", "2026-12-02 09:20", "across the night"),
    ("2026-12-01 20:00", 10, "work_minutes", "2026-12-02 09:10", "reported at night"),
    ("2026-12-04 17:45", 30, "work_minutes", "2026-12-07 09:15", "Friday evening to Monday"),
    ("2026-12-04 19:00", 2, "work_hours", "2026-12-07 11:00", "Friday night, two working hours"),
    ("2026-12-05 10:00", 30, "work_minutes", "2026-12-07 09:30", "reported on a Saturday"),
    ("2026-12-01 10:00", 3, "work_days", "2026-12-04 10:00", "three working days, same clock time"),
    ("2026-12-03 15:00", 2, "work_days", "2026-12-07 15:00", "working days across a weekend"),
    ("2026-12-01 11:00", 3, "work_hours", "2026-12-01 16:00", "hours across lunch"),
    ("2026-12-01 17:00", 60, "work_minutes", "2026-12-01 18:00", "ends exactly at closing, not next morning"),
    ("2026-12-01 11:00", 60, "work_minutes", "2026-12-01 12:00", "ends exactly at noon"),
    ("2026-09-30 17:00", 2, "work_hours", "2026-10-08 10:00", "into the National Day week 2026"),
    ("2026-10-03 10:00", 30, "work_minutes", "2026-10-08 09:30", "reported during the holiday"),
    ("2026-10-09 17:30", 60, "work_minutes", "2026-10-10 09:30", "调休 Saturday 2026-10-10 is a working day"),
    ("2026-10-10 11:00", 1, "work_days", "2026-10-12 11:00", "from the 调休 Saturday over a normal Sunday"),
    ("2026-09-19 10:00", 30, "work_minutes", "2026-09-20 09:30", "调休 Sunday 2026-09-20"),
    ("2026-09-24 17:00", 2, "work_hours", "2026-09-28 10:00", "Mid-Autumn Friday 2026-09-25 is off"),
    ("2025-09-30 16:00", 3, "work_days", "2025-10-11 16:00", "National Day 2025: Oct 1–8 off, Sat Oct 11 works"),
    ("2026-02-13 17:00", 1, "work_days", "2026-02-14 17:00", "调休 Saturday before Spring Festival 2026"),
    ("2026-02-14 17:30", 60, "work_minutes", "2026-02-24 09:30", "Spring Festival 2026: Feb 15–23 off"),
    ("2026-12-04 23:30", 60, "natural_minutes", "2026-12-05 00:30", "natural minutes ignore office hours"),
    ("2026-10-03 10:00", 24, "natural_hours", "2026-10-04 10:00", "natural hours ignore holidays"),
    ("2026-12-01 10:00", 0, "work_minutes", "2026-12-01 10:00", "no time at all"),
]


@pytest.mark.parametrize("start, amount, unit, expected, why", TABLE, ids=[row[-1] for row in TABLE])
def test_deadlines_match_the_hand_computed_table(start, amount, unit, expected, why):
    deadline = CAL.deadline(at(start), Limit(amount, unit))
    assert deadline == at(expected), why
    assert deadline.utcoffset().total_seconds() == 8 * 3600


def test_the_table_is_large_enough_and_covers_every_unit():
    assert len(TABLE) >= 20 and {row[2] for row in TABLE} == {"work_minutes", "work_hours", "work_days",
                                                              "natural_minutes", "natural_hours"}


def test_instants_in_other_zones_are_the_same_instant():
    utc = datetime.fromisoformat("2026-12-01T02:00:00+00:00")  # 10:00 in Shenzhen
    assert CAL.deadline(utc, Limit(30)) == at("2026-12-01 10:30")


def test_naive_instants_and_bad_limits_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        CAL.deadline(datetime(2026, 12, 1, 10), Limit(30))
    with pytest.raises(ValueError, match="unknown time-limit unit"):
        Limit(3, "fortnights")
    with pytest.raises(ValueError, match="negative"):
        Limit(-1)
    with pytest.raises(ValueError, match="order"):
        WorkCalendar(periods=((time(14), time(18)), (time(9), time(12))))
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(holidays=frozenset({date(2027, 1, 1)}), workdays=frozenset({date(2027, 1, 1)}))


def test_working_minutes_between_two_instants_and_overdue_is_negative():
    assert CAL.working_minutes(at("2026-12-04 17:00"), at("2026-12-07 10:00")) == 120  # Friday 1 h + Monday 1 h
    assert CAL.remaining(at("2026-12-01 14:30"), at("2026-12-01 10:30")) == -120  # 90 before noon + 30 after
    assert CAL.remaining(at("2026-12-01 14:30"), at("2026-12-01 10:30"), natural=True) == -240
    assert CAL.working_minutes(at("2026-10-01 00:00"), at("2026-10-08 00:00")) == 0  # the whole holiday


def test_a_year_the_package_does_not_know_is_assumed_monday_to_friday_until_an_admin_enters_it():
    start = at("2026-12-31 17:00")
    assert CAL.assumed([date(2026, 12, 31), date(2027, 1, 1)]) == [2027]
    assert CAL.deadline(start, Limit(2, "work_hours")) == at("2027-01-01 10:00")  # Friday assumed working
    entered = WorkCalendar(holidays=frozenset({date(2027, 1, 1)}), workdays=frozenset({date(2027, 2, 6)}))
    assert entered.assumed([date(2027, 1, 1)]) == []
    assert entered.deadline(start, Limit(2, "work_hours")) == at("2027-01-04 10:00")
    assert entered.is_workday(date(2027, 2, 6))  # a Saturday the admin made a working day


def test_custom_office_hours():
    cal = WorkCalendar(periods=((time(8, 30), time(12)), (time(13, 30), time(17, 30))))
    assert cal.minutes_per_day == 450
    assert cal.deadline(at("2026-12-01 11:50"), Limit(20)) == at("2026-12-01 13:40")


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 1)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=LOCAL))


@given(instants, st.integers(min_value=0, max_value=5000))
def test_a_deadline_is_exactly_that_much_working_time_later(start, minutes):
    deadline = CAL.add_working_minutes(start, minutes)
    assert deadline >= start and CAL.working_minutes(start, deadline) == pytest.approx(minutes)


@given(instants, st.integers(min_value=1, max_value=2000), st.integers(min_value=1, max_value=2000))
def test_an_extension_adds_up(start, first, extra):
    """An extension of ``extra`` minutes after a limit of ``first`` ends where ``first + extra`` would."""
    once = CAL.add_working_minutes(CAL.add_working_minutes(start, first), extra)
    assert once == CAL.add_working_minutes(start, first + extra)


def test_working_minutes_skip_the_admins_day_off_and_count_their_working_sunday():
    from spatial.worktime import LOCAL, WorkCalendar

    calendar = WorkCalendar(holidays=frozenset({date(2026, 12, 3)}), workdays=frozenset({date(2026, 12, 6)}))
    assert calendar.working_minutes(datetime(2026, 12, 2, 17, 0, tzinfo=LOCAL),
                                    datetime(2026, 12, 6, 10, 0, tzinfo=LOCAL)) == 60 + 420 + 60  # Wed 17–18, Fri, Sun 9–10


def test_the_clock_is_the_sum_of_its_day_terms():
    """WorkCalendar.day_terms and period_seconds (the figures sum clocks per day in SQL) give clock() back: working
    days before × minutes per day, plus the day's working seconds before the instant on a working day."""
    calendar = WorkCalendar(holidays=frozenset({date(2026, 12, 3)}), workdays=frozenset({date(2026, 12, 6)}))
    assert calendar.period_seconds == ((9 * 3600, 12 * 3600), (14 * 3600, 18 * 3600))
    instants = [datetime(2026, 12, d, h, m, tzinfo=LOCAL) for d, h, m in ((2, 10, 30), (3, 10, 30), (5, 10, 30),
                                                                        (6, 13, 0), (6, 18, 30))]
    for t in instants + [datetime(1999, 12, 31, 10, 0, tzinfo=LOCAL)]:  # before the base year: counted back
        before, workday = calendar.day_terms(t.date())
        seconds = sum(max(0, min(t.hour * 3600 + t.minute * 60, e) - s) for s, e in calendar.period_seconds)
        assert calendar.clock(t) == before * calendar.minutes_per_day + (seconds / 60 if workday else 0), t
    assert calendar.day_terms(date(2026, 12, 3))[1] is False and calendar.day_terms(date(2026, 12, 6))[1] is True
