"""After and above the handling of a case: satisfaction (回访) and supervision (督办).

**Satisfaction.** Once the case a reporter follows is closed, they rate it 1–5 with an optional comment, by
tracking code (:func:`rate_by_code`, channel ``resident``); or staff record what the reporter said on a phone
call (:func:`record_callback`, channel ``phone``): a grid worker of the case's grid, a planner or inspector of its
area, the department that handled it, an admin. Once per report: a second attempt is a Conflict (409), whoever
makes it. A report merged into another is rated on its own row once the kept case is closed; the figures
(:mod:`spatial.store.case_figures`) count the kept cases' ratings only, as they count kept cases only.
Every rating is a ``case_events`` row (``rate``, state unchanged).

**Supervision.** A leader — a planner or inspector (督查员) of the case's area, or an admin — flags an open
case (:func:`supervise`, with a note; flagging again replaces the note), which shows on every list of it
(``supervised``) and on the escalation list. :func:`escalations` is the list for the level above: the open
cases of the caller's area that are past their running step's deadline or flagged, grouped by the units one
level below the caller's division (an admin or a district: subdistricts; a subdistrict: communities; a
community: grids), with who holds each case and how late it is in working minutes (natural minutes for a
natural-time limit, as the clock counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import case_flow as flow
from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput
from spatial.store import cases as case_store
from spatial.store.engine import plain_rows
from spatial.store.scope import scope_sql

SCORES = range(1, 6)
MAX_COMMENT = 500
LEADER_ROLES = ("planner", "inspector")


def _check_score(score: int, comment: str | None) -> str | None:
    if score not in SCORES:
        raise InvalidInput("satisfaction is a whole number from 1 (very dissatisfied) to 5 (very satisfied)",
                           code="case.rating_score", field="score")
    comment = (comment or "").strip() or None
    if comment and len(comment) > MAX_COMMENT:
        raise InvalidInput(f"a comment has at most {MAX_COMMENT} characters", code="case.rating_comment",
                           field="comment", max_chars=MAX_COMMENT)
    return comment


def _rate(session: Session, row: Any, followed_state: str, score: int, comment: str | None, *, by: str,
          channel: str, now: datetime) -> None:
    if row.satisfaction is not None:
        raise Conflict("this case has been rated already (once per report)", code="case.rated",
                       score=row.satisfaction)
    if followed_state != "closed":
        raise Conflict(f"a case is rated after it is closed; it is {flow.STATES[followed_state][1]}",
                       code="case.rating_early", state=followed_state)
    session.execute(text("""
        UPDATE cases SET satisfaction = :score, satisfaction_note = :comment, satisfaction_at = :now,
                         satisfaction_by = :by, satisfaction_channel = :channel, version = version + 1
        WHERE id = :id"""), {"score": score, "comment": comment, "now": now, "by": by, "channel": channel,
                             "id": row.id})
    case_store._event(session, row.id, by, "rate", row.state, row.state, at=now,
                      note=f"{channel}: {score}/5" + (f" {comment}" if comment else ""))


def rate_by_code(session: Session, tracking_code: str, score: int, comment: str | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """The reporter's rating by tracking code (module docstring); answers the tracking view."""
    comment = _check_score(score, comment)
    now = case_store.now_or(now)
    row = case_store.by_code(session, tracking_code, lock=True)
    followed = row.state
    if row.duplicate_of is not None:
        followed = session.execute(text("SELECT state FROM cases WHERE id = :id"), {"id": row.duplicate_of}).scalar_one()
    _rate(session, row, followed, score, comment, by="resident", channel="resident", now=now)
    return case_store.track(session, tracking_code, now=now)


def record_callback(session: Session, who: Principal, case_id: int, score: int, comment: str | None = None, *,
                    now: datetime | None = None) -> case_store.CaseView:
    """Staff record a phone 回访 of a visible closed case (module docstring for who may)."""
    comment = _check_score(score, comment)
    now = case_store.now_or(now)
    row = case_store.locked_case(session, who, case_id)
    may = (who.role in ("admin", "planner", "inspector")
           or (who.role == "grid_worker" and row.grid_id in who.grid_ids)
           or (who.role == "department" and row.assignee in (who.username, who.department)))
    if not may:
        raise Forbidden("a phone call-back is recorded by the case's grid worker, a planner or inspector of its "
                        "area, or the department that handled it", code="case.callback_role")
    _rate(session, row, row.state, score, comment, by=who.username, channel="phone", now=now)
    return case_store.get_case(session, who, case_id, now=now)


def supervise(session: Session, who: Principal, case_id: int, note: str, *,
              now: datetime | None = None) -> case_store.CaseView:
    """A leader flags an open case of their area (督办) with ``note`` (1–500 characters)."""
    who.require_role(*LEADER_ROLES)
    note = (note or "").strip()
    if not 1 <= len(note) <= 500:
        raise InvalidInput("say what is to be done by when (a note of 1 to 500 characters)", code="case.supervise_note",
                           field="note")
    now = case_store.now_or(now)
    row = case_store.locked_case(session, who, case_id)
    area, params = scope_sql(who.area, grid_col="CAST(:grid AS integer)", community_col="CAST(:community AS text)")
    in_area = session.execute(text(f"SELECT {area}"), {**params, "grid": row.grid_id,
                                                       "community": row.community_code}).scalar_one()
    if not in_area:
        raise Forbidden("leaders supervise the cases of their own area", code="case.supervise_area")
    if row.state in flow.TERMINAL:
        raise Conflict(f"case {case_id} is finished ({flow.STATES[row.state][1]}): nothing to supervise",
                       code="case.supervise_finished", state=row.state)
    session.execute(text("""
        UPDATE cases SET supervised_at = :now, supervised_by = :by, supervision_note = :note, version = version + 1
        WHERE id = :id"""), {"now": now, "by": who.username, "note": note, "id": case_id})
    case_store._event(session, case_id, who.username, "supervise", row.state, row.state, note=note, at=now,
                      assignee=row.assignee)
    return case_store.get_case(session, who, case_id, now=now)


# -- the escalation list ------------------------------------------------------------------------------------------

# the caller's division level -> (SQL of the unit key, SQL of its name, the unit level)
_UNITS = {
    "all": ("s.code", "s.name", "subdistrict"),
    "district": ("s.code", "s.name", "subdistrict"),
    "subdistrict": ("c.community_code", "d.name", "community"),
    "community": ("g.code", "g.name", "grid"),
}
_HOLDERS = {"reported": "dispatch centre (立案)", "registered": "dispatch centre (派遣)",
            "feedback": "verifier (核查)", "verified": "dispatch centre (结案)"}


@dataclass
class Escalation:
    """One late or flagged case: ``unit`` the unit one level below the caller that it lies in; ``holder`` who
    must act now (the assignee while dispatched or being handled, else the step's role); ``late_min``
    working minutes past the deadline (None: not late, flagged only)."""

    id: int
    category: str
    state: str
    state_label: str
    unit: str | None
    unit_name: str | None
    grid_code: str | None
    community_code: str | None
    holder: str
    deadline: datetime | None
    late_min: float | None
    supervised: dict[str, Any] | None


@dataclass
class Escalations:
    level: str
    unit_level: str
    total: int
    units: list[dict[str, Any]]
    cases: list[Escalation]


def escalations(session: Session, who: Principal, *, limit: int = 100, offset: int = 0,
                now: datetime | None = None) -> Escalations:
    """The escalation list of the caller's area (module docstring): per unit the count of its listed cases, of
    the late and of the flagged ones; and one page of the cases, late ones first (deadline missed longest
    ago first), then those flagged while on time. Planners, inspectors and admins."""
    who.require_role(*LEADER_ROLES)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    now = case_store.now_or(now)
    if who.role == "admin":
        level = "all"
    else:
        level = session.execute(text("SELECT level FROM divisions WHERE code = :c"),
                                {"c": who.scope_code}).scalar_one_or_none() or "community"
    key_sql, name_sql, unit_level = _UNITS.get(level, _UNITS["community"])
    area, params = scope_sql(who.area, grid_col="c.grid_id", community_col="c.community_code")
    # OFFSET 0 plans the unfinished cases of the area on their own (the covering index of migration 0023, read
    # alone), then keeps the late and flagged: left to itself the planner estimates the late ones on the partial
    # indexes a hundred times too few and reads the table page of every one of them
    unfinished = f"{area} AND c.state NOT IN ({case_store.TERMINAL_SQL})"
    listed = f"""
        SELECT * FROM (SELECT c.id, c.grid_id, c.community_code, c.deadline, c.state, c.supervised_at FROM cases c
                       WHERE {unfinished} OFFSET 0) c
        WHERE (c.deadline < :now AND c.state <> 'deferred') OR c.supervised_at IS NOT NULL"""
    order = "(c.deadline < :now AND c.state <> 'deferred') DESC, c.deadline NULLS LAST, c.id"
    units_of = """LEFT JOIN grids g ON g.id = c.grid_id
        LEFT JOIN divisions d ON d.code = c.community_code LEFT JOIN divisions s ON s.code = d.parent_code"""
    params = {**params, "now": now}
    units = session.execute(text(f"""
        WITH counted AS (
            SELECT c.grid_id, c.community_code, count(*) AS listed,
                   count(*) FILTER (WHERE c.deadline < :now AND c.state <> 'deferred') AS late,
                   count(*) FILTER (WHERE c.supervised_at IS NOT NULL) AS flagged
            FROM ({listed}) c GROUP BY 1, 2)
        SELECT {key_sql} AS key, min({name_sql}) AS name, sum(c.listed)::int AS listed, sum(c.late)::int AS late,
               sum(c.flagged)::int AS flagged
        FROM counted c {units_of} GROUP BY 1 ORDER BY 1 NULLS LAST"""), params).all()
    # the page is chosen on ``cases`` alone (ids only), then joined: names and units for its rows only. The late
    # cases in deadline order walk the covering index and stop at the page's end; the flagged ones on time come
    # after all late ones, so they are read only for a page that reaches past the last late case
    late_total = sum(u.late for u in units)
    rows = plain_rows(session.execute(text(f"""
        SELECT c.id, k.name AS category, c.state, c.assignee, c.deadline, c.clock_natural, g.code AS grid_code,
               c.community_code, {key_sql} AS unit, {name_sql} AS unit_name, c.supervised_at, c.supervised_by,
               c.supervision_note
        FROM (SELECT id FROM (
                  (SELECT c.id, 0 AS part, c.deadline FROM cases c
                   WHERE {unfinished} AND c.deadline < :now AND c.state <> 'deferred'
                   ORDER BY c.deadline, c.id LIMIT :upto)
                  UNION ALL
                  (SELECT c.id, 1, c.deadline FROM ({listed}) c
                   WHERE CAST(:flagged AS boolean) AND NOT coalesce(c.deadline < :now AND c.state <> 'deferred', false)
                   ORDER BY c.deadline NULLS LAST, c.id LIMIT :upto)) parts
              ORDER BY part, deadline NULLS LAST, id LIMIT :limit OFFSET :offset) page
        JOIN cases c ON c.id = page.id JOIN case_categories k ON k.code = c.category_code {units_of}
        ORDER BY {order}"""),
        {**params, "limit": limit, "offset": offset, "upto": limit + offset,
         "flagged": offset + limit > late_total}))
    calendar = case_store.work_calendar(session)
    found = []
    for r in rows:
        late = None
        if r.deadline is not None and r.deadline < now and r.state != "deferred":
            late = round(-calendar.remaining(now, r.deadline, natural=r.clock_natural), 1)
        holder = r.assignee if r.state in ("dispatched", "handling") and r.assignee else _HOLDERS.get(
            r.state, r.assignee or "dispatch centre")
        found.append(Escalation(
            id=r.id, category=r.category, state=r.state, state_label=flow.STATES[r.state][0], unit=r.unit,
            unit_name=r.unit_name, grid_code=r.grid_code, community_code=r.community_code, holder=holder,
            deadline=r.deadline, late_min=late,
            supervised=None if r.supervised_at is None else {"at": r.supervised_at, "by": r.supervised_by,
                                                             "note": r.supervision_note}))
    return Escalations(level=level, unit_level=unit_level, total=sum(u.listed for u in units),
                       units=[{"unit": u.key, "name": u.name, "cases": u.listed, "late": u.late, "flagged": u.flagged}
                              for u in units], cases=found)
