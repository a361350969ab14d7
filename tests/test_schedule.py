"""Weekly staffing schedules: parsing OSM opening_hours, normalising them, and who is staffed when."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spatial.analysis.schedule import (DAY_MIN, WEEK_MIN, Week, describe, format_week, parse_opening_hours, staffing,
                                       try_parse)
from spatial.errors import InvalidInput

H = 60


@pytest.mark.parametrize("text, hours", [
    ("24/7", 168), ("off", 0), ("closed", 0), ("Mo-Su 06:00-22:00", 7 * 16), ("Mo-Sa 07:30-20:00", 6 * 12.5),
    ("Mo-Su 07:00-21:00", 7 * 14), ("Mo-Su 06:30-23:00", 7 * 16.5), ("06:00-22:00", 7 * 16),
    ("Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00", 5 * 8 + 3), ("Mo-Su 00:00-24:00", 168),
    ("Mo,We,Fr 10:00-11:00", 3), ("Sa-Mo 10:00-12:00", 6), ("Mo-Su 06:00-22:00; Su off", 6 * 16),
    ("Mo-Fr 22:00-06:00", 5 * 8), ("Mo-Su 18:00-26:00", 7 * 8), ("Mo open", 24),
])
def test_parse_counts_the_staffed_hours(text, hours):
    assert parse_opening_hours(text).hours == pytest.approx(hours)


def test_overnight_spans_run_into_the_next_day_and_sunday_into_monday():
    week = parse_opening_hours("Su 22:00-06:00")
    assert (6 * DAY_MIN + 23 * H) in week and (2 * H) in week          # Sunday 23:00 and Monday 02:00
    assert (6 * DAY_MIN + 21 * H) not in week and (7 * H) not in week
    assert week.intervals == ((0, 6 * H), (6 * DAY_MIN + 22 * H, WEEK_MIN))


def test_a_later_rule_replaces_earlier_ones_on_its_days_but_keeps_the_spill_over():
    week = parse_opening_hours("Mo-Su 20:00-02:00; Tu 09:00-10:00")
    assert (DAY_MIN + 1 * H) in week                                   # Monday's night runs into Tuesday
    assert (DAY_MIN + 21 * H) not in week and (DAY_MIN + 9 * H + 30) in week


@pytest.mark.parametrize("text", ["", "   ", "PH off", "Mo-Fr 8-18", "Xy 10:00-11:00", "Mo 25:00-26:00",
                                  "Mo 10:61-11:00", "sunrise-sunset", "Jan-Mar Mo 10:00-12:00", "x" * 300])
def test_anything_else_is_refused_with_a_message(text):
    with pytest.raises(InvalidInput):
        parse_opening_hours(text)
    assert try_parse(text) is None


def test_format_is_canonical_and_describe_lists_days():
    assert format_week(parse_opening_hours("Mo-Su 00:00-24:00")) == "24/7"
    assert format_week(parse_opening_hours("Mo-Fr 06:00-22:00; Sa-Su 06:00-22:00")) == "Mo-Su 06:00-22:00"
    assert format_week(parse_opening_hours("Sa 08:00-12:00; Mo 08:00-12:00")) == "Mo 08:00-12:00; Sa 08:00-12:00"
    pieces = describe(parse_opening_hours("Su 22:00-06:00"))
    assert [(p["day"], p["from"], p["to"]) for p in pieces] == [("Mo", "00:00", "06:00"), ("Su", "22:00", "24:00")]
    assert pieces[0]["day_zh"] == "周一"


@st.composite
def weeks(draw):
    spans = draw(st.lists(st.tuples(st.integers(0, WEEK_MIN - 1), st.integers(1, 3 * DAY_MIN)), max_size=6))
    return Week.of((a, a + d) for a, d in spans)


@settings(max_examples=200, deadline=None)
@given(weeks())
def test_formatting_then_parsing_gives_the_same_week(week):
    assert parse_opening_hours(format_week(week)) == week


@settings(max_examples=100, deadline=None)
@given(weeks(), weeks())
def test_set_algebra(a, b):
    assert (a | ~a).is_full and (a & ~a).is_empty
    assert (a | b).minutes + (a & b).minutes == a.minutes + b.minutes
    assert (a - b).minutes == a.minutes - (a & b).minutes


@settings(max_examples=100, deadline=None)
@given(st.lists(weeks(), min_size=1, max_size=4))
def test_staffing_sweep_agrees_with_set_algebra(schedules):
    named = dict(enumerate(schedules))
    result = staffing(named)
    union = Week()
    for w in schedules:
        union = union | w
    assert result.none == ~union
    for key, week in named.items():
        others = Week()
        for k, w in named.items():
            if k != key:
                others = others | w
        assert result.sole[key] == week - others
    for d in range(7):
        for h in range(24):
            minute = (d * 24 + h) * H
            assert result.hourly[d][h] <= sum(minute in w for w in schedules)


def test_staffing_of_two_gates():
    day_gate, main_gate = parse_opening_hours("Mo-Su 06:00-22:00"), parse_opening_hours("Mo-Fr 08:00-18:00")
    result = staffing({"side": day_gate, "main": main_gate})
    assert result.none.hours == 7 * 8                    # 22:00-06:00 every night
    assert result.sole["side"].hours == 7 * 16 - 5 * 10
    assert result.sole["main"].is_empty
    assert result.hourly[0][3] == 0 and result.hourly[0][9] == 2 and result.hourly[5][9] == 1
    assert staffing({}).none.is_full
