"""Case figures (事件考核指标) per grid, community, subdistrict, department, category, worker or month.

**Which cases a period holds.** Every case has at most one *due instant*: its ``closed_at`` when it is closed,
else the deadline of its running step (``cases.deadline``) when it is open and a clock runs. Rejected cases
(不予立案), cases merged into another (``duplicate_of``) and deferred ones (挂账, no clock) have none and count
nowhere until they close. A case is **due** in the period [``date_from`` 00:00, ``date_to`` + 1 day 00:00)
Asia/Shanghai when its due instant falls in it: the cases closed in the period plus the open cases whose
current deadline fell in it (an open case overdue since an earlier period counts in that period, once).
``month`` groups by the Asia/Shanghai month of the due instant.

**Figures of a group** (rates are fractions 0–1, rounded to 4 places; None when the denominator is 0):

* ``due``, ``closed`` (due and closed);
* 结案率 ``closure_rate`` = closed / due;
* 按期结案率 ``on_time_rate`` = closed with no step late (no ``case_events.late_minutes`` > 0 in the case's
  whole history) / due;
* 返工率 ``redo_rate`` = closed cases with ``redos`` > 0 / closed;
* 延期率 ``extension_rate`` = due cases with ``extensions`` > 0 / due;
* ``avg_step_minutes``: the mean working minutes (:meth:`spatial.worktime.WorkCalendar.working_minutes`, on
  the admin's calendar) of a *stay* of the group's due cases in a state that runs a clock
  (:data:`spatial.case_flow.CLOCKS`: reported, registered, dispatched, handling, feedback, verified), from the
  event that entered the state to the event that left it. Extension events (same state before and after) do
  not end a stay; time deferred is not a step; a stay still running is not counted. Working minutes even for
  natural-time categories, so that groups compare;
* ``rated``: the closed cases with a satisfaction (回访: the reporter's by tracking code, or staff's phone
  call-back, :mod:`spatial.store.case_followup`); ``avg_satisfaction``: their mean (1–5, 2 places).

**Cost.** Two statements, each summing in SQL. The counts are one aggregate of the due cases.
The step times and the late check are one pass over the due cases' events (about 7 per case): a window over each
case's state changes (by time, then id) marks the changes that enter a stay in a clocked state (ended by a later
change) and those that end one. The working minutes of a stay are ``clock(leave) - clock(enter)``
(:meth:`~spatial.worktime.WorkCalendar.clock`: the working days before the instant's local day times the minutes
of a working day, plus on a working day its working seconds before the instant), so the statement sums per group
and local day the signed instants (+1 leaving, -1 entering; a change that leaves one stay and enters the next
cancels) and their working seconds of the day, from the calendar's periods; Python adds each day's terms
(:meth:`~spatial.worktime.WorkCalendar.day_terms`). The sums are exact (microseconds), so a mean of exactly
x.x5 minutes rounds one way whatever the order of the sums. The same pass flags the closed cases with a late
event. On 1,000,000 cases (2 cores, shared), a subdistrict's last month by community, grid or worker takes
0.55–0.7 s (was 1.0–1.4 s with every event sent to Python) and its last 365 days by month about 6.5 s (was
10–18 s): reading and sorting the 1.4 M events of the year's 206,000 due cases costs most of it.

**Scope.** The caller's area (:attr:`spatial.access.Principal.area`) on the case's grid and community, fixed
at report time. Unlike reading one case, being its assignee or reporter does not add it: figures are an
area's. Worker is the case's ``assignee`` (a user name or a department), None when nobody holds it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import case_flow as flow
from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.store.cases import work_calendar
from spatial.store.engine import jit_off
from spatial.store.scope import scope_sql
from spatial.worktime import LOCAL, WorkCalendar

MAX_DAYS = 3 * 366 + 1
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2199, 12, 31)

# by -> (SQL of the group key, SQL of its label), on the columns of a _BASE row
GROUPS: dict[str, tuple[str, str]] = {
    "grid": ("g_code", "g_name"),
    "community": ("community_code", "d_name"),
    "subdistrict": ("d_parent", "s_name"),
    "department": ("department", "department"),
    "category": ("category_code", "k_name"),
    "worker": ("assignee", "assignee"),
    "month": ("to_char(due_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')",
              "to_char(due_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"),
}
GROUP_LABELS = {"grid": ("网格", "grid"), "community": ("社区", "community"), "subdistrict": ("街道", "subdistrict"),
                "department": ("责任部门", "department"), "category": ("事件类别", "category"),
                "worker": ("处置人", "worker"), "month": ("月份", "month")}

# column -> (中文, English)
COLUMNS: dict[str, tuple[str, str]] = {
    "key": ("编码", "key"),
    "label": ("名称", "name"),
    "due": ("应结案数", "cases due"),
    "closed": ("结案数", "closed"),
    "closed_on_time": ("按期结案数", "closed on time"),
    "redone": ("返工数", "redone"),
    "extended": ("延期数", "extended"),
    "closure_rate": ("结案率", "closure rate"),
    "on_time_rate": ("按期结案率", "on-time closure rate"),
    "redo_rate": ("返工率", "redo rate"),
    "extension_rate": ("延期率", "extension rate"),
    "avg_step_minutes": ("平均环节用时 (工作分钟)", "mean working minutes per step"),
    "rated": ("回访评价数", "rated (call-backs)"),
    "avg_satisfaction": ("平均满意度", "mean satisfaction"),
}

_BASE = """
    SELECT c.id, c.state, c.redos, c.extensions, c.satisfaction, c.category_code, c.community_code, c.assignee,
           c.grid_id,
           CASE WHEN c.state = 'closed' THEN c.closed_at
                WHEN c.state NOT IN ('rejected', 'deferred') THEN c.deadline END AS due_at,
           g.code AS g_code, g.name AS g_name, d.name AS d_name, d.parent_code AS d_parent, s.name AS s_name,
           k.department, k.name AS k_name
    FROM cases c
    JOIN case_categories k ON k.code = c.category_code
    LEFT JOIN grids g ON g.id = c.grid_id
    LEFT JOIN divisions d ON d.code = c.community_code
    LEFT JOIN divisions s ON s.code = d.parent_code
    WHERE c.duplicate_of IS NULL AND {scope}
      AND ((c.state = 'closed' AND c.closed_at >= :start AND c.closed_at < :end)
           OR (c.state NOT IN ('closed', 'rejected', 'deferred') AND c.deadline >= :start AND c.deadline < :end))"""
# the last two lines are due_at in [start, end) said so that the indexes on closed_at and on the open cases'
# deadline find the period's cases without reading every case of the area (and the planner knows how many)


@dataclass
class FigureRow:
    """The figures of one group (see the module docstring); ``key`` None: cases without one (no grid, nobody
    assigned)."""

    key: str | None
    label: str | None
    due: int
    closed: int
    closed_on_time: int
    redone: int
    extended: int
    closure_rate: float | None
    on_time_rate: float | None
    redo_rate: float | None
    extension_rate: float | None
    avg_step_minutes: float | None
    rated: int
    avg_satisfaction: float | None


@dataclass
class Figures:
    by: str
    date_from: date
    date_to: date
    rows: list[FigureRow] = field(default_factory=list)


def period(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The instants [start, end) of the days ``date_from``..``date_to`` (inclusive), Asia/Shanghai.
    InvalidInput when ``date_to`` is before ``date_from``, the period is longer than three years or a day is
    outside 2000–2199."""
    for name, day in (("from", date_from), ("to", date_to)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput(f"{name} must be a day between {FIRST_DAY} and {LAST_DAY}, got {day}", field=name)
    if date_to < date_from:
        raise InvalidInput(f"the period ends ({date_to}) before it starts ({date_from})", field="to")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise InvalidInput(f"a period is at most {MAX_DAYS:,} days", field="to")
    return datetime.combine(date_from, time(0), LOCAL), datetime.combine(date_to + timedelta(days=1), time(0), LOCAL)


def case_figures(session: Session, who: Principal, *, by: str, date_from: date | None = None,
                 date_to: date | None = None, today: date | None = None) -> Figures:
    """The figures of the caller's area per ``by`` group (:data:`GROUPS`) for the cases due between
    ``date_from`` and ``date_to`` (inclusive, Asia/Shanghai days; default: from the first of the current
    month to ``today``, itself by default today in Asia/Shanghai), ordered by key (None last). Groups with no
    case due are absent."""
    if by not in GROUPS:
        raise InvalidInput(f"by must be one of {', '.join(GROUPS)}", field="by")
    today = today or datetime.now(LOCAL).date()
    date_to = date_to or max(today, date_from or today)
    date_from = date_from or date_to.replace(day=1)
    start, end = period(date_from, date_to)
    area, params = scope_sql(who.area, grid_col="c.grid_id", community_col="c.community_code")
    key_sql, label_sql = GROUPS[by]
    due = (f"WITH b AS ({_BASE.format(scope=area)}), "
           f"due AS (SELECT b.*, {key_sql} AS key, {label_sql} AS label FROM b) ")
    params = {**params, "start": start, "end": end}
    jit_off(session)
    counts = session.execute(text(due + """
        SELECT key, min(label) AS label, count(*) AS due,
               count(*) FILTER (WHERE state = 'closed') AS closed,
               count(*) FILTER (WHERE state = 'closed' AND redos > 0) AS redone,
               count(*) FILTER (WHERE extensions > 0) AS extended,
               count(satisfaction) FILTER (WHERE state = 'closed') AS rated,
               avg(satisfaction) FILTER (WHERE state = 'closed') AS satisfaction
        FROM due GROUP BY key ORDER BY key NULLS LAST"""), params).all()
    calendar = work_calendar(session)
    steps_sql, steps_params = _steps_statement(calendar)
    steps = _steps(session.execute(text(due + steps_sql), {**params, **steps_params}).all(), calendar)
    rows = []
    for r in counts:
        step = steps.get(r.key, _Steps())
        closed_on_time = r.closed - step.closed_late
        rows.append(FigureRow(
            key=r.key, label=r.label, due=r.due, closed=r.closed, closed_on_time=closed_on_time,
            redone=r.redone, extended=r.extended, closure_rate=_rate(r.closed, r.due),
            on_time_rate=_rate(closed_on_time, r.due), redo_rate=_rate(r.redone, r.closed),
            extension_rate=_rate(r.extended, r.due),
            avg_step_minutes=step.mean_minutes(calendar),
            rated=r.rated, avg_satisfaction=None if r.satisfaction is None else round(float(r.satisfaction), 2)))
    return Figures(by=by, date_from=date_from, date_to=date_to, rows=rows)


_STEPS = """,
    events AS (  -- the state changes of the due cases, and their other events that were late
        SELECT due.key, due.state = 'closed' AS closed, e.case_id, e.at, e.id, e.late_minutes > 0 AS late,
               e.to_state = ANY(CAST(:clocks AS text[])) AS clocked,
               e.from_state IS NULL OR e.from_state <> e.to_state AS moves
        FROM due JOIN case_events e ON e.case_id = due.id
        WHERE e.from_state IS NULL OR e.from_state <> e.to_state OR e.late_minutes > 0),
    marked AS (  -- a state change enters a stay (in a clocked state, that a later change ends) and/or ends one
        SELECT key, at, moves AND clocked AND lead(at) OVER w IS NOT NULL AS enters,
               moves AND coalesce(lag(moves AND clocked) OVER w, false) AS leaves,
               closed AND row_number() OVER w = 1 AND bool_or(late) OVER w AS closed_late
        FROM events  -- per case the late events that are no state change first, then the state changes in order
        WINDOW w AS (PARTITION BY case_id ORDER BY moves, at, id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)),
    signed AS (SELECT key, enters, closed_late, leaves::int - enters::int AS n,
                      at AT TIME ZONE 'Asia/Shanghai' AS local FROM marked)
    SELECT key, CASE WHEN n <> 0 THEN CAST(local AS date) END AS day, sum(n) AS n,
           sum(n * ({working_seconds})) FILTER (WHERE n <> 0) AS seconds,
           count(*) FILTER (WHERE enters) AS stays, count(*) FILTER (WHERE closed_late) AS closed_late
    FROM signed GROUP BY 1, 2"""
"""Appended to the ``due`` CTE: per group key and Asia/Shanghai day (UTC+8 since 1992, as
:meth:`~spatial.worktime.WorkCalendar.clock` counts), the instants that enter (-1) or leave (+1) a stay, summed
(``n``), with their working seconds of that day before them, summed times ``n`` (``seconds``); the day NULL
for the events that do neither. Between two stays of a case the same instant leaves one and enters the next: it
cancels (``n`` 0), so that a case going through its steps gives two instants, not twelve. Plus the stays and
the closed cases with a late event (counted on the case's first row in the window)."""


def _steps_statement(calendar: WorkCalendar) -> tuple[str, dict[str, Any]]:
    """:data:`_STEPS` with the working seconds of a day before an instant on ``calendar`` (Σ over its periods of
    the part of the period before the instant), and its parameters."""
    working = " + ".join(f"greatest(0, least(extract(epoch FROM CAST(local AS time)), :period_{i}_end) - :period_{i}_start)"
                         for i in range(len(calendar.period_seconds)))
    params: dict[str, Any] = {"clocks": list(flow.CLOCKS)}
    for i, (start_s, end_s) in enumerate(calendar.period_seconds):
        params |= {f"period_{i}_start": start_s, f"period_{i}_end": end_s}
    return _STEPS.format(working_seconds=working), params


@dataclass
class _Steps:
    """The stays of a group's due cases: how many, their working minutes in all, and the closed cases that
    were late at some step."""

    stays: int = 0
    days: int = 0
    """Σ n × working days before the instants' day."""
    seconds: Decimal = Decimal(0)
    """Σ n × working seconds of the instants' own day before them, on working days (exact: microseconds)."""
    closed_late: int = 0

    def mean_minutes(self, calendar: WorkCalendar) -> float | None:
        """The mean working minutes of a stay, rounded to 1 place; None without stays. Exact up to the rounding,
        so that a mean of exactly x.x5 minutes rounds the same way whatever the order of the sums."""
        if not self.stays:
            return None
        return round(float((self.days * calendar.minutes_per_day + Fraction(self.seconds) / 60) / self.stays), 1)


def _steps(rows: list[Any], calendar: WorkCalendar) -> dict[str | None, _Steps]:
    """:data:`_STEPS`' rows summed per group key: a stay's working minutes are clock(leave) - clock(enter)
    (:meth:`~spatial.worktime.WorkCalendar.clock`), so a group's are Σ n × clock over its signed instants,
    which :meth:`~spatial.worktime.WorkCalendar.day_terms` gives per day."""
    found: dict[str | None, _Steps] = defaultdict(_Steps)
    for r in rows:
        step = found[r.key]
        step.stays += r.stays
        step.closed_late += r.closed_late
        if r.day is not None:
            before, workday = calendar.day_terms(r.day)
            step.days += r.n * before
            step.seconds += r.seconds if workday else 0
    return found


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
