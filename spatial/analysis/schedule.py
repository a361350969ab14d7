"""Weekly staffing schedules of checkpoints: parse OSM ``opening_hours`` strings, compute with them.

A :class:`Week` is a set of minutes of the week, kept as sorted, disjoint, half-open intervals
``[start, end)`` of minutes since **Monday 00:00 local time** (0 … 10,080). Local time is the checkpoint's own
(China Standard Time in practice); nothing here looks at a clock or a time zone.

Supported ``opening_hours`` syntax (the subset checkpoints use; see https://wiki.openstreetmap.org/wiki/Key:opening_hours):

* ``24/7`` (always), ``off`` / ``closed`` (never: a sealed opening);
* rules separated by ``;``: ``[days] times | off | open``, e.g. ``Mo-Su 06:00-22:00``,
  ``Mo-Fr 08:00-12:00,14:00-18:00; Sa 09:00-12:00``, ``Mo-Sa 07:30-20:00; Su off``;
* days: ``Mo Tu We Th Fr Sa Su``, ranges (``Mo-Fr``, wrapping ``Fr-Mo``) and lists (``Mo,We,Fr``); a rule without
  days applies to every day;
* times: ``HH:MM-HH:MM``; an end at or before the start (``22:00-06:00``) or past ``24:00`` (``18:00-26:00``)
  runs on into the next day (Sunday into Monday).

A later rule replaces earlier ones on the days it names (OSM semantics); the spill-over of an overnight span
from the day before stays. Anything else (public holidays ``PH``, months, ``sunrise``, comments) raises
:class:`~spatial.errors.InvalidInput` rather than being guessed.

>>> parse_opening_hours("Mo-Su 06:00-22:00").hours
112.0
>>> format_week(parse_opening_hours("Mo-Fr 22:00-06:00"))
'Mo-Fr 22:00-06:00'
>>> parse_opening_hours("off").is_empty, parse_opening_hours("24/7").is_full
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from spatial.errors import InvalidInput

DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN
DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
DAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAYS = re.compile(r"^(Mo|Tu|We|Th|Fr|Sa|Su)(?:-(Mo|Tu|We|Th|Fr|Sa|Su))?$")
MAX_TEXT = 255


@dataclass(frozen=True)
class Week:
    """Minutes of the week as sorted, disjoint, non-adjacent ``(start, end)`` intervals within [0, 10080)."""

    intervals: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, spans: Iterable[tuple[int, int]]) -> Week:
        """Normalise any spans of minutes (may overlap; may run past the end of the week, which wraps to
        Monday; an end before the start is refused)."""
        pieces: list[tuple[int, int]] = []
        for start, end in spans:
            if end < start:
                raise ValueError(f"span ends before it starts: {start}-{end}")
            if end - start >= WEEK_MIN:
                return cls.full()
            start, end = start % WEEK_MIN, start % WEEK_MIN + (end - start)
            if end > WEEK_MIN:
                pieces += [(start, WEEK_MIN), (0, end - WEEK_MIN)]
            elif end > start:
                pieces.append((start, end))
        merged: list[list[int]] = []
        for start, end in sorted(pieces):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return cls(tuple((a, b) for a, b in merged))

    @classmethod
    def full(cls) -> Week:
        return cls(((0, WEEK_MIN),))

    @property
    def minutes(self) -> int:
        return sum(b - a for a, b in self.intervals)

    @property
    def hours(self) -> float:
        """Hours per week (minutes / 60)."""
        return self.minutes / 60

    @property
    def is_empty(self) -> bool:
        return not self.intervals

    @property
    def is_full(self) -> bool:
        return self.intervals == ((0, WEEK_MIN),)

    def __contains__(self, minute: int) -> bool:
        return any(a <= minute < b for a, b in self.intervals)

    def __or__(self, other: Week) -> Week:
        return Week.of(self.intervals + other.intervals)

    def __invert__(self) -> Week:
        edges = [0, *(x for iv in self.intervals for x in iv), WEEK_MIN]
        return Week.of((edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i] < edges[i + 1])

    def __and__(self, other: Week) -> Week:
        return ~(~self | ~other)

    def __sub__(self, other: Week) -> Week:
        return self & ~other

    def by_day(self) -> list[tuple[int, int, int]]:
        """``(day 0=Monday, from minute, to minute)`` pieces, each within one day (``to`` may be 1440)."""
        out = []
        for start, end in self.intervals:
            while start < end:
                day, boundary = start // DAY_MIN, (start // DAY_MIN + 1) * DAY_MIN
                out.append((day, start - day * DAY_MIN, min(end, boundary) - day * DAY_MIN))
                start = min(end, boundary)
        return out

    def to_bitmap(self) -> list[list[bool]]:
        """7 × 24 booleans: True where the whole hour is inside the week (a partly covered hour is False)."""
        return [[_covers(self, (d * 24 + h) * 60, (d * 24 + h + 1) * 60) for h in range(24)] for d in range(7)]


def _covers(week: Week, start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in week.intervals)


def hhmm(minute: int) -> str:
    """Minutes of a day → ``HH:MM`` (1440 → ``24:00``)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _days(selector: str) -> list[int]:
    out: list[int] = []
    for part in selector.split(","):
        match = _DAYS.match(part.strip())
        if not match:
            raise InvalidInput(f"unknown days {part.strip()!r}: use Mo, Tu, We, Th, Fr, Sa, Su, ranges like "
                               "Mo-Fr and lists like Mo,We")
        first = DAYS.index(match.group(1))
        last = DAYS.index(match.group(2)) if match.group(2) else first
        out += [(first + k) % 7 for k in range((last - first) % 7 + 1)]
    return out


def _spans(selector: str) -> list[tuple[int, int]]:
    out = []
    for part in selector.split(","):
        match = _TIME.match(part.strip())
        if not match:
            raise InvalidInput(f"unknown time span {part.strip()!r}: use HH:MM-HH:MM, e.g. 06:00-22:00")
        h0, m0, h1, m1 = (int(g) for g in match.groups())
        if h0 > 23 or m0 > 59 or m1 > 59 or h1 > 48:
            raise InvalidInput(f"time out of range in {part.strip()!r}")
        start, end = h0 * 60 + m0, h1 * 60 + m1
        if end <= start:
            end += DAY_MIN  # runs past midnight
        out.append((start, end))
    return out


def parse_opening_hours(value: str) -> Week:
    """The staffed minutes of an OSM ``opening_hours`` string (the subset in the module docstring).

    InvalidInput, with what to write instead, for anything outside that subset.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("opening_hours is empty: use '24/7', 'off' or e.g. 'Mo-Su 06:00-22:00'")
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"opening_hours longer than {MAX_TEXT} characters")
    per_day: dict[int, list[tuple[int, int]]] = {d: [] for d in range(7)}
    for raw in value.split(";"):
        rule = raw.strip()
        if not rule:
            continue
        if rule == "24/7":
            per_day = {d: [(0, DAY_MIN)] for d in range(7)}
            continue
        head, _, rest = rule.partition(" ")
        if _DAYS.match(head.split(",")[0]):
            days, body = _days(head), rest.strip()
        else:
            days, body = list(range(7)), rule
        if body in ("off", "closed"):
            spans = []
        elif body in ("", "open"):
            spans = [(0, DAY_MIN)]
        else:
            spans = _spans(body)
        for d in days:
            per_day[d] = list(spans)
    return Week.of((d * DAY_MIN + a, d * DAY_MIN + b) for d, spans in per_day.items() for a, b in spans)


def try_parse(value: str | None) -> Week | None:
    """:func:`parse_opening_hours`, or None when the string is missing or outside the supported subset."""
    try:
        return parse_opening_hours(value or "")
    except InvalidInput:
        return None


def format_week(week: Week) -> str:
    """A canonical ``opening_hours`` string for ``week``: ``24/7``, ``off``, or day ranges with their spans.

    Adjacent days with the same spans are grouped; a span running past midnight for less than a day is written
    as one overnight span (``22:00-06:00``). ``parse_opening_hours(format_week(w)) == w`` for every week.

    >>> format_week(parse_opening_hours("Mo-Fr 22:00-06:00; Sa 08:00-12:00,14:00-18:00"))
    'Mo-Fr 22:00-06:00; Sa 08:00-12:00,14:00-18:00'
    """
    if week.is_full:
        return "24/7"
    if week.is_empty:
        return "off"
    spans: dict[int, list[list[int]]] = {d: [] for d in range(7)}
    for day, a, b in week.by_day():
        spans[day].append([a, b])
    for day in range(7):  # join "…-24:00" with the next day's "00:00-…" into one overnight span
        following = spans[(day + 1) % 7]
        last = spans[day][-1] if spans[day] else None
        if (last and last[0] > 0 and last[1] == DAY_MIN and following and following[0][0] == 0
                and following[0][1] < last[0] and following[0] is not last):
            last[1] = DAY_MIN + following.pop(0)[1]
    text = {d: ",".join(f"{hhmm(a)}-{hhmm(b % DAY_MIN if b > DAY_MIN else b)}" for a, b in spans[d])
            for d in range(7)}
    rules: list[str] = []
    day = 0
    while day < 7:
        if not text[day]:
            day += 1
            continue
        last = day
        while last + 1 < 7 and text[last + 1] == text[day]:
            last += 1
        days = DAYS[day] if last == day else f"{DAYS[day]}-{DAYS[last]}"
        rules.append(f"{days} {text[day]}")
        day = last + 1
    return "; ".join(rules)


def describe(week: Week) -> list[dict[str, str | int]]:
    """Per-day pieces for people: ``{"day": "Mo", "day_zh": "周一", "from": "00:00", "to": "06:00"}``."""
    return [{"day": DAYS[d], "day_zh": DAYS_ZH[d], "from": hhmm(a), "to": hhmm(b), "minutes": b - a}
            for d, a, b in week.by_day()]


@dataclass(frozen=True)
class Staffing:
    """How a group of schedules covers the week.

    ``none``: minutes with no schedule open; ``sole``: per key, the minutes when it is the only one open;
    ``hourly``: 7 × 24 counts, the fewest schedules open at any minute of that hour (0 = a gap somewhere in it).
    """

    none: Week
    sole: dict[Hashable, Week]
    hourly: list[list[int]]


def staffing(weeks: Mapping[Hashable, Week]) -> Staffing:
    """Sweep the week once over every schedule's interval edges.

    >>> s = staffing({"a": parse_opening_hours("Mo-Su 06:00-22:00"), "b": parse_opening_hours("Mo-Su 08:00-18:00")})
    >>> s.none.hours, s.sole["a"].hours, s.sole["b"].hours, s.hourly[0][6], s.hourly[0][9]
    (56.0, 42.0, 0.0, 1, 2)
    """
    events: dict[int, list[tuple[Hashable, int]]] = {}
    for key, week in weeks.items():
        for a, b in week.intervals:
            events.setdefault(a, []).append((key, 1))
            events.setdefault(b, []).append((key, -1))
    cuts = sorted({0, WEEK_MIN, *events})
    open_now: set = set()
    none, sole = [], {key: [] for key in weeks}
    segments: list[tuple[int, int, int]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        for key, delta in events.get(a, ()):
            (open_now.add if delta > 0 else open_now.discard)(key)
        segments.append((a, b, len(open_now)))
        if not open_now:
            none.append((a, b))
        elif len(open_now) == 1:
            sole[next(iter(open_now))].append((a, b))
    hourly = [[min(count for a, b, count in segments if a < (d * 24 + h + 1) * 60 and b > (d * 24 + h) * 60)
               for h in range(24)] for d in range(7)]
    return Staffing(Week.of(none), {key: Week.of(spans) for key, spans in sole.items()}, hourly)
