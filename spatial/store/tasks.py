"""Tasks handed to grid-team members (任务): a home-isolation delivery, a care visit to an elderly person living
alone, a follow-up from a screening visit (issue 17 §1, decision 0020).

A task is for one household (optionally one of its current residents) or one building, is due on a day (the
local date, no time), and is done or undone (``done_at``; marking it undone again clears it). Its ``grid`` is the
building's grid when it is handed out, and decides who else sees it.

Who:

* **hand out** (:func:`create_task`): grid workers and planners (and admins), for a household in their household
  scope or a building in their area, to a member of that place's team: a grid worker of the grid, or a team
  member assigned to the grid, to the building's micro-grid or to the building (:mod:`spatial.store.team`);
* **see** (:func:`list_tasks`): the assignee their own tasks; roles that read households
  (:data:`spatial.access.HOUSEHOLD_ROLES`, admins) the tasks of their household scope too. A volunteer, medical
  staff or a specialist sees only the tasks given to them;
* **mark done / undone** (:func:`set_done`): the assignee, or a grid worker or planner who sees the task.

Household data leaves masked (:mod:`spatial.privacy`): the building, unit, floor and room, the head's and the
person's names as surname + ``*``; never an ID or phone number (a reveal is the grid worker's,
:func:`spatial.store.household_reads.reveal`). Every answer naming households writes one audit row
(``read_masked``); handing out and marking are audited (``task_create``, ``task_done``, ``task_undone``). The caller
owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput, OutOfScope
from spatial.privacy import mask_name
from spatial.store import audit
from spatial.store.scope import building_scope, scope_sql
from spatial.store.team import CURRENT
from spatial.vocab import TASK_KINDS

CREATE_ROLES = ("grid_worker", "planner")
MAX_NOTE = 1000
MAX_DUE_DAYS = 366
"""A task is due at most a year ahead (and at most a week in the past: entered late)."""
TASK_FIELDS = ("unit", "floor", "room", "head_name", "person_name")


@dataclass(frozen=True)
class TaskView:
    """A task as its readers see it (names masked). ``overdue``: undone after its due day (server's local date)."""

    id: int
    kind: str
    due: date
    done_at: datetime | None
    done_by: str | None
    note: str | None
    assignee: str
    assignee_name: str | None
    created_by: str
    created_at: datetime
    grid_code: str
    building_id: int
    building_code: str | None
    building_name: str | None
    household_id: int | None
    unit: str | None
    floor: int | None
    room: str | None
    head_name: str | None
    person_name: str | None
    overdue: bool


_SELECT = """
SELECT t.id, t.kind, t.due, t.done_at, t.done_by, t.note, u.username AS assignee, u.display_name AS assignee_name,
       t.created_by, t.created_at, g.code AS grid_code, t.building_id, b.code AS building_code, b.name AS building_name,
       t.household_id, h.unit, h.floor, h.room, h.head_name, p.name AS person_name, t.assignee_id, t.grid_id
FROM tasks t JOIN users u ON u.id = t.assignee_id JOIN grids g ON g.id = t.grid_id
JOIN buildings b ON b.id = t.building_id LEFT JOIN households h ON h.id = t.household_id
LEFT JOIN persons p ON p.id = t.person_id"""


def _visible(who: Principal) -> tuple[str, dict[str, Any]]:
    """SQL predicate (on ``tasks t`` joined to ``grids g``) of the tasks ``who`` sees (module docstring)."""
    scope, params = scope_sql(who.household_scope, grid_col="t.grid_id", community_col="g.community_code",
                              building_col="t.building_id")
    return f"(t.assignee_id = :me OR {scope})", {**params, "me": who.user_id}


def _view(row: Any, today: date) -> TaskView:
    return TaskView(id=row.id, kind=row.kind, due=row.due, done_at=row.done_at, done_by=row.done_by, note=row.note,
                    assignee=row.assignee, assignee_name=row.assignee_name, created_by=row.created_by,
                    created_at=row.created_at, grid_code=row.grid_code, building_id=row.building_id,
                    building_code=row.building_code, building_name=row.building_name,
                    household_id=row.household_id, unit=row.unit, floor=row.floor, room=row.room,
                    head_name=mask_name(row.head_name), person_name=mask_name(row.person_name),
                    overdue=row.done_at is None and row.due < today)


def _audit_read(session: Session, who: Principal, views: list[TaskView], purpose: str) -> None:
    households = sorted({v.household_id for v in views if v.household_id is not None})
    if households:
        audit.record(session, who, "read_masked", object_type="household", object_id=households,
                     fields=TASK_FIELDS, purpose=purpose)


def _on_team(session: Session, user_id: int, grid_id: int, building_id: int) -> bool:
    """Whether the user serves the building: a grid worker of its grid, or a current team assignment on its grid,
    its micro-grid or itself."""
    return bool(session.scalar(text(f"""
        SELECT EXISTS (SELECT 1 FROM grid_assignments WHERE user_id = :u AND grid_id = :g)
            OR EXISTS (SELECT 1 FROM team_assignments a WHERE a.user_id = :u AND {CURRENT} AND (
                a.grid_id = :g OR a.building_id = :b
                OR a.micro_grid_id = (SELECT micro_grid_id FROM buildings WHERE id = :b)))"""),
        {"u": user_id, "g": grid_id, "b": building_id}))


def create_task(session: Session, who: Principal, *, kind: str, assignee: str, due: date,
                household_id: int | None = None, person_id: int | None = None, building_code: str | None = None,
                note: str | None = None, today: date | None = None) -> TaskView:
    """Hand a task of ``kind`` (:data:`spatial.vocab.TASK_KINDS`) for a household (and optionally a current
    resident of it, ``person_id``) or a building (``building_code``) to ``assignee``, due on ``due``.

    Refused: Forbidden for other roles than :data:`CREATE_ROLES` (and admins); OutOfScope for a household or
    building outside the caller's scope; InvalidInput for an unknown kind, no or two targets, a person not living
    in the household, a due day more than a week past or a year ahead, a note over 1,000 characters, or an
    assignee who is not on the place's team."""
    who.require_role(*CREATE_ROLES)
    today = today or date.today()
    if kind not in TASK_KINDS:
        raise InvalidInput(f"unknown task kind {kind!r}; kinds are {', '.join(TASK_KINDS)}", code="task.kind")
    if (household_id is None) == (building_code is None):
        raise InvalidInput("a task is for one household or one building", code="task.target")
    if not today - timedelta(days=7) <= due <= today + timedelta(days=MAX_DUE_DAYS):
        raise InvalidInput("a task is due from a week ago to a year ahead", code="task.due", due=due.isoformat())
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"a note has at most {MAX_NOTE} characters", code="task.note")
    if household_id is not None:
        scope, params = building_scope(who.household_scope)
        place = session.execute(text(f"""
            SELECT b.id AS building_id, b.grid_id FROM households h JOIN buildings b ON b.id = h.building_id
            WHERE h.id = :h AND {scope}"""), {**params, "h": household_id}).one_or_none()
        if place is None:
            raise OutOfScope(f"no household {household_id} in your area")
        if person_id is not None and not session.scalar(text(
                "SELECT EXISTS (SELECT 1 FROM persons WHERE id = :p AND household_id = :h AND moved_out IS NULL)"),
                {"p": person_id, "h": household_id}):
            raise InvalidInput(f"person {person_id} does not live in household {household_id}", code="task.person")
    else:
        if person_id is not None:
            raise InvalidInput("a person is named with their household", code="task.person")
        scope, params = building_scope(who.area)
        place = session.execute(text(f"SELECT b.id AS building_id, b.grid_id FROM buildings b WHERE b.code = :c "
                                     f"AND {scope}"), {**params, "c": building_code}).one_or_none()
        if place is None:
            raise OutOfScope(f"no building {building_code} in your area")
    if place.grid_id is None:
        raise InvalidInput("the building lies in no grid: it has no team", code="task.no_grid")
    user = session.execute(text("SELECT id FROM users WHERE username = :u AND active"), {"u": assignee}).one_or_none()
    if user is None or not _on_team(session, user.id, place.grid_id, place.building_id):
        raise InvalidInput(f"{assignee} is not on the team serving this place", code="task.assignee",
                           assignee=assignee)
    task_id = session.execute(text("""
        INSERT INTO tasks (kind, grid_id, building_id, household_id, person_id, assignee_id, due, note, created_by)
        VALUES (:kind, :grid, :building, :household, :person, :assignee, :due, :note, :by) RETURNING id"""),
        {"kind": kind, "grid": place.grid_id, "building": place.building_id, "household": household_id,
         "person": person_id, "assignee": user.id, "due": due, "note": note, "by": who.username}).scalar_one()
    audit.record(session, who, "task_create", object_type="task", object_id=str(task_id),
                 households=[household_id] if household_id else [], fields=["kind", "assignee", "due"],
                 result=f"{kind} for {assignee}, due {due.isoformat()}")
    return _get(session, who, task_id, today)


def _get(session: Session, who: Principal, task_id: int, today: date, *, lock: bool = False) -> TaskView:
    visible, params = _visible(who)
    row = session.execute(text(f"{_SELECT} WHERE t.id = :id AND {visible}" + (" FOR UPDATE OF t" if lock else "")),
                          {**params, "id": task_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"no task {task_id} of yours or in your area", code="task.unknown")
    return _view(row, today)


def list_tasks(session: Session, who: Principal, *, mine: bool = False, grid_code: str | None = None,
               open_only: bool = False, limit: int = 200, today: date | None = None) -> list[TaskView]:
    """The tasks ``who`` sees (module docstring), undone first by due day, then done ones latest first; ``mine``:
    only those given to the caller; ``grid_code``: of that grid; ``open_only``: undone only. At most ``limit``
    (1–1000). One audit row for the households they name."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit is 1 to 1000", code="task.limit")
    today = today or date.today()
    visible, params = _visible(who)
    where = [visible]
    if mine:
        where.append("t.assignee_id = :me")
    if grid_code is not None:
        where.append("g.code = :grid_code")
        params["grid_code"] = grid_code
    if open_only:
        where.append("t.done_at IS NULL")
    rows = session.execute(text(f"{_SELECT} WHERE {' AND '.join(where)} "
                                "ORDER BY t.done_at IS NOT NULL, CASE WHEN t.done_at IS NULL THEN t.due END, "
                                "t.done_at DESC, t.id LIMIT :limit"), {**params, "limit": limit}).all()
    views = [_view(r, today) for r in rows]
    _audit_read(session, who, views, "tasks")
    return views


def set_done(session: Session, who: Principal, task_id: int, done: bool, *, note: str | None = None,
             today: date | None = None) -> TaskView:
    """Mark a task done (``done_at`` now, ``done_by`` the caller) or undone again; ``note`` replaces the task's
    note if given. The assignee, or a grid worker or planner who sees the task (and admins); OutOfScope for a task
    the caller does not see, Forbidden for one they see but may not mark."""
    today = today or date.today()
    task = _get(session, who, task_id, today, lock=True)
    if task.assignee != who.username and who.role != "admin" and who.role not in CREATE_ROLES:
        raise Forbidden("only the task's assignee, a grid worker or a planner marks it", code="task.not_yours")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"a note has at most {MAX_NOTE} characters", code="task.note")
    if done != (task.done_at is not None) or note is not None:
        session.execute(text("""
            UPDATE tasks SET done_at = CASE WHEN :done THEN coalesce(done_at, now()) END,
                             done_by = CASE WHEN :done THEN coalesce(done_by, :me) END,
                             note = coalesce(:note, note) WHERE id = :id"""),
            {"done": done, "me": who.username, "note": note, "id": task_id})
        audit.record(session, who, "task_done" if done else "task_undone", object_type="task",
                     object_id=str(task_id), households=[task.household_id] if task.household_id else [],
                     fields=["done_at"] + (["note"] if note else []), result="done" if done else "undone")
    view = _get(session, who, task_id, today)
    _audit_read(session, who, [view], "task")
    return view


def get_task(session: Session, who: Principal, task_id: int, *, today: date | None = None) -> TaskView:
    """One task the caller sees (OutOfScope otherwise); audited if it names a household."""
    view = _get(session, who, task_id, today or date.today())
    _audit_read(session, who, [view], "task")
    return view

