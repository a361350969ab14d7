"""Cases in the database: report, act on, read and list them, with their working-time clock.

The workflow is :mod:`spatial.case_flow` (what follows what), the clock :mod:`spatial.worktime` (deadlines on
the Chinese work calendar); this module adds who may do what, places a case in its grid, and writes every
transition to ``case_events``. Locations are EPSG:4326 (lon, lat); distances in metres (geography).

Who:

* **report**: anyone signed in (a grid worker, a building head's account, an inspector…), or a resident without
  an account through the public page (``who`` None, ``reporter_kind`` 'resident');
* **dispatch** (register, reject, dispatch, defer, resume, close, reopen, approve or refuse an extension):
  planners and admins whose area holds the case — the command centre (指挥中心);
* **handle** (accept, return, report back, request an extension): the case's assignee (a user name, or the
  department of a ``department`` account), or an admin;
* **verify** (verify, send back for redo): a grid worker of the case's grid, or a planner or admin of its area,
  but never the one who handled it.

* **merge** (合并, a duplicate into the open case of the same problem): as dispatch; or the resident who has
  just reported it, by tracking code, into one of the duplicates they were offered (:func:`merge_reported`).

Visibility: a case is visible to whom its grid or community is in :attr:`Principal.area`, and to its assignee
and reporter. A ``department`` account (责任部门) sees only the cases ever dispatched to its department or to
itself, whatever its scope code. Reporter name and phone are personal data and leave masked
(:mod:`spatial.privacy`).

Duplicates: an open case (not closed, rejected, merged or itself merged) of the same category within
``duplicate_within_m`` metres, measured in the deployment's metric CRS (``metric_srid``, default EPSG:4547).
A merge keeps both reports: the merged one points to the kept one (``duplicate_of``, state ``merged``), both
get an event naming the other, and the merged report's tracking code shows the kept case's progress.

A case's grid and community are fixed when it is reported: a later redraw of the grids does not move it
(:func:`where_now` says where it would fall today).
"""

from __future__ import annotations

import ipaddress
import json
import math
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import case_flow as flow
from spatial.access import BUILDING_ROLES, Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound, OutOfScope, StaleEdit, TooManyRequests
from spatial.privacy import mask_name, mask_phone
from spatial.store import audit
from spatial.store.engine import plain_rows
from spatial.store.scope import is_code_range, scope_sql
from spatial.worktime import UNITS, Limit, WorkCalendar

DISPATCH = frozenset({"register", "reject", "dispatch", "defer", "resume", "close", "reopen",
                      "approve_extension", "refuse_extension"})
HANDLE = frozenset({"accept", "return", "report_back", "request_extension"})
VERIFY = frozenset({"verify", "verify_fail"})
REPORTER_KINDS = ("resident", "grid_worker", "building_head", "department", "patrol")
DUPLICATE_WITHIN_M = 50.0
METRIC_SRID = 4547
TRACKING_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read out over the phone
RESTART = frozenset({"verify_fail", "resume", "reopen", "return"})  # these start the step's clock afresh


@dataclass(frozen=True)
class Category:
    code: str
    parent_code: str | None
    name: str
    name_en: str
    department: str
    priority: str
    limits: dict[str, Limit]
    active: bool


@dataclass
class CaseView:
    """A case as the caller may see it; ``reporter_name``/``reporter_phone`` masked."""

    id: int
    tracking_code: str
    category_code: str
    category: str
    lon: float
    lat: float
    grid_code: str | None
    community_code: str | None
    description: str
    reporter_kind: str
    reporter_name: str | None
    reporter_phone: str | None
    state: str
    state_label: str
    priority: str
    assignee: str | None
    department: str
    clock_step: str | None
    deadline: datetime | None
    remaining_min: float | None
    overdue: bool
    extension_requested: dict | None
    version: int
    reported_at: datetime
    closed_at: datetime | None
    allowed: list[str]
    duplicate_of: int | None = None
    supervised: dict[str, Any] | None = None
    satisfaction: int | None = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    department_grids: list[str] = field(default_factory=list)
    """The departments' grids where it lay when reported (一张网, migration 0024): "department · grid" names."""


# -- calendar and categories ---------------------------------------------------------------------------------------


def work_calendar(session: Session) -> WorkCalendar:
    """The official calendar with the admin's entries (``work_calendar_days``) on top: one instance per set of
    entries, kept by the process, so that what it has worked out of its days serves the next request too."""
    rows = session.execute(text("SELECT day, workday FROM work_calendar_days")).all()
    return _calendar(frozenset(d for d, w in rows if not w), frozenset(d for d, w in rows if w))


@lru_cache(maxsize=16)
def _calendar(holidays: frozenset[date], workdays: frozenset[date]) -> WorkCalendar:
    return WorkCalendar(holidays=holidays, workdays=workdays)


def enter_calendar_day(session: Session, who: Principal, day: date, workday: bool, note: str | None = None) -> None:
    """Admins: make ``day`` a working day (调休) or a day off, overriding the official calendar."""
    who.require_role("admin")
    session.execute(text("""
        INSERT INTO work_calendar_days (day, workday, note, entered_by) VALUES (:day, :workday, :note, :who)
        ON CONFLICT (day) DO UPDATE SET workday = EXCLUDED.workday, note = EXCLUDED.note,
            entered_by = EXCLUDED.entered_by, entered_at = now()"""),
        {"day": day, "workday": workday, "note": note, "who": who.username})
    audit.record(session, who, "calendar.enter", object_type="work_calendar_day", object_id=day.isoformat(),
                 purpose=note, result="workday" if workday else "day off")


def categories(session: Session, *, active_only: bool = True) -> list[Category]:
    """Every category with its effective limits (a step missing on a category is its parent's)."""
    rows = session.execute(text(
        "SELECT code, parent_code, name, name_en, department, priority, limits, active FROM case_categories "
        "ORDER BY code")).all()
    by_key = {r.code: r for r in rows}

    def limits(code: str | None) -> dict[str, Limit]:
        if code is None:
            return {}
        row = by_key[code]
        own = {step: Limit(int(v[0]), v[1]) for step, v in (row.limits or {}).items()}
        return {**limits(row.parent_code), **own}

    return [Category(r.code, r.parent_code, r.name, r.name_en, r.department, r.priority, limits(r.code), r.active)
            for r in rows if r.active or not active_only]


def _category(session: Session, code: str) -> Category:
    found = {c.code: c for c in categories(session)}
    if code not in found:
        raise InvalidInput(f"unknown case category {code!r}: choose one of {', '.join(sorted(found))}",
                           field="category")
    return found[code]


# -- reporting ------------------------------------------------------------------------------------------------------


def report_case(session: Session, who: Principal | None, *, category: str, lon: float, lat: float,
                description: str, reporter_kind: str | None = None, reporter_name: str | None = None,
                reporter_phone: str | None = None, client_addr: str | None = None, now: datetime | None = None,
                duplicate_within_m: float = DUPLICATE_WITHIN_M, metric_srid: int = METRIC_SRID) -> CaseView:
    """Record a new case at (lon, lat) in EPSG:4326; its grid and community are where the point lies today.

    ``who`` None is a resident without an account. Refused (InvalidInput) outside every community gridgov
    serves, for an unknown category or an empty description. The answer lists open cases of the same category
    within ``duplicate_within_m`` metres in ``metric_srid`` (``duplicates``), for the reporter and the
    dispatcher to merge."""
    now = _now(now)
    cat = _category(session, category)
    description = (description or "").strip()
    if not description:
        raise InvalidInput("describe the problem (at most 2,000 characters)", field="description")
    if len(description) > 2000:
        raise InvalidInput(f"the description has {len(description):,} characters; at most 2,000", field="description")
    kind = reporter_kind or ("resident" if who is None else "grid_worker" if who.role == "grid_worker"
                             else "building_head" if who.role in BUILDING_ROLES else "department")
    if kind not in REPORTER_KINDS:
        raise InvalidInput(f"reporter_kind must be one of {', '.join(REPORTER_KINDS)}", field="reporter_kind")
    if who is not None and who.role in BUILDING_ROLES:
        _require_own_building(session, who, lon, lat)
    place = session.execute(text("""
        WITH p AS (SELECT ST_SetSRID(ST_Point(:lon, :lat), 4326) AS g)
        SELECT d.code AS community_code,
               (SELECT g.id FROM grids g, p WHERE g.retired_at IS NULL AND g.community_code = d.code
                  AND ST_Intersects(g.boundary, p.g) ORDER BY g.code LIMIT 1) AS grid_id
        FROM divisions d, p WHERE d.level = 'community' AND ST_Intersects(d.boundary, p.g)
        ORDER BY d.code LIMIT 1"""), {"lon": lon, "lat": lat}).one_or_none()
    if place is None:
        raise InvalidInput(f"({lon:.6f}, {lat:.6f}) is not in any community gridgov serves: check the position "
                           "and its coordinate system", field="location")
    limit = cat.limits.get("register")
    calendar = work_calendar(session)
    deadline = calendar.deadline(now, limit) if limit else None
    natural = bool(limit and limit.natural)
    case_id = session.execute(text("""
        INSERT INTO cases (tracking_code, category_code, location, grid_id, community_code, description,
                           reporter_kind, reporter_user, reporter_name, reporter_phone, reporter_address, priority,
                           clock_step, clock_started_at, clock_natural, deadline, reported_at)
        VALUES (:code, :category, ST_SetSRID(ST_Point(:lon, :lat), 4326), :grid, :community, :description,
                :kind, :user, :name, :phone, CAST(:address AS inet), :priority, 'register', :now, :natural, :deadline, :now)
        RETURNING id"""), {
        "code": _tracking_code(), "category": cat.code, "lon": lon, "lat": lat, "grid": place.grid_id,
        "community": place.community_code, "description": description, "kind": kind,
        "user": who.username if who else None, "name": reporter_name, "phone": reporter_phone,
        "address": _inet(client_addr), "priority": cat.priority, "now": now, "deadline": deadline, "natural": natural}).scalar_one()
    _event(session, case_id, who.username if who else "resident", "report", None, "reported", note=None,
           deadline_after=deadline, at=now)
    view = _view(session, case_id, calendar, now)
    view.duplicates = duplicates_near(session, cat.code, lon, lat, within_m=duplicate_within_m,
                                      metric_srid=metric_srid, besides=case_id)
    return view


BUILDING_REPORT_M = 30.0
"""A building head reports within this many metres (geography) of one of their buildings' footprints."""


def _require_own_building(session: Session, who: Principal, lon: float, lat: float) -> None:
    """Forbidden unless (lon, lat) lies within :data:`BUILDING_REPORT_M` metres of a building of the caller's (a
    building or unit head reports for their buildings: the entrance, the stairwell, the lane in front)."""
    near = bool(who.building_ids) and session.scalar(text("""
        SELECT EXISTS (SELECT 1 FROM buildings WHERE id = ANY(CAST(:ids AS bigint[]))
                       AND ST_DWithin(footprint::geography, ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, :m))"""),
        {"ids": sorted(who.building_ids), "lon": lon, "lat": lat, "m": BUILDING_REPORT_M})
    if not near:
        raise Forbidden(f"a {who.role} reports cases at their own buildings (within {BUILDING_REPORT_M:.0f} m)",
                        code="case.outside_buildings", within_m=int(BUILDING_REPORT_M))


def duplicates_near(session: Session, category: str, lon: float, lat: float, *, within_m: float = DUPLICATE_WITHIN_M,
                    metric_srid: int = METRIC_SRID, besides: int | None = None) -> list[dict[str, Any]]:
    """The open cases of ``category`` (none merged, ``besides`` left out) within ``within_m`` metres of (lon, lat)
    EPSG:4326, measured in ``metric_srid``, nearest first, at most 10: ``id``, ``state``, ``state_label``,
    ``reported_at`` and ``distance_m``. No tracking code (it is the reporter's secret). The search box in degrees
    (the GiST index on ``location``) is widened by a fifth over the metre radius, then measured exactly."""
    margin = within_m * 1.2 / (111_320 * max(0.2, math.cos(math.radians(lat))))
    rows = session.execute(text("""
        WITH p AS (SELECT ST_SetSRID(ST_Point(:lon, :lat), 4326) AS g)
        SELECT c.id, c.state, c.reported_at,
               ST_Distance(ST_Transform(c.location, CAST(:srid AS integer)), ST_Transform(p.g, CAST(:srid AS integer))) AS d
        FROM cases c, p
        WHERE c.location && ST_Expand(p.g, :margin) AND c.id IS DISTINCT FROM CAST(:besides AS bigint)
          AND c.category_code = :category AND c.state NOT IN ('closed', 'rejected', 'merged')
          AND c.duplicate_of IS NULL
          AND ST_DWithin(ST_Transform(c.location, CAST(:srid AS integer)), ST_Transform(p.g, CAST(:srid AS integer)), :within)
        ORDER BY d, c.id LIMIT 10"""), {"besides": besides, "category": category, "lon": lon, "lat": lat,
                                        "within": within_m, "srid": metric_srid, "margin": margin}).all()
    return [{"id": r.id, "state": r.state, "state_label": flow.STATES[r.state][0], "reported_at": r.reported_at,
             "distance_m": round(r.d, 1)} for r in rows]


def case_duplicates(session: Session, who: Principal, case_id: int, *, within_m: float = DUPLICATE_WITHIN_M,
                    metric_srid: int = METRIC_SRID) -> list[dict[str, Any]]:
    """The dispatcher's view: :func:`duplicates_near` of a visible case (OutOfScope, 404, otherwise)."""
    view = get_case(session, who, case_id)
    return duplicates_near(session, view.category_code, view.lon, view.lat, within_m=within_m,
                           metric_srid=metric_srid, besides=case_id)


def require_report_allowance(session: Session, *, address: str | None, phone: str | None,
                             per_address: int = 10, per_phone: int = 5, window_s: int = 3600) -> None:
    """TooManyRequests (429) when the public page has taken ``per_address`` reports from one client address,
    or ``per_phone`` under one phone number, within ``window_s`` seconds (residents report without an account:
    this keeps one client from flooding the dispatchers)."""
    counts = session.execute(text("""
        SELECT count(*) FILTER (WHERE reporter_address = CAST(:address AS inet)),
               count(*) FILTER (WHERE reporter_phone = :phone)
        FROM cases WHERE reporter_user IS NULL AND reported_at > now() - make_interval(secs => :window)"""),
        {"address": _inet(address), "phone": phone, "window": window_s}).one()
    if (address and counts[0] >= per_address) or (phone and counts[1] >= per_phone):
        raise TooManyRequests(f"too many reports from here in the last {window_s // 60} minutes: please try again "
                              "later, or call the community office", retry_after_s=window_s)


# -- acting ---------------------------------------------------------------------------------------------------------


def act(session: Session, who: Principal, case_id: int, action: str, *, version: int | None = None,
        note: str | None = None, assignee: str | None = None, extension: Limit | None = None,
        into: int | None = None, now: datetime | None = None) -> CaseView:
    """Take ``action`` on a case (see the module docstring for who may). ``version``: the version the caller
    saw (StaleEdit, 412, when it changed); a transition the workflow does not allow is a Conflict (409) listing
    the allowed actions. ``dispatch`` needs ``assignee``; ``request_extension`` needs ``extension``; ``merge``
    needs ``into``, the open case of the same category that carries on; actions that need a reason
    (:attr:`spatial.case_flow.Action.needs_note`) need ``note``."""
    now = _now(now)
    row = locked_case(session, who, case_id)
    if version is not None and version != row.version:
        raise StaleEdit(f"case {case_id} changed since you loaded it (version {version}, now {row.version}): "
                        "reload it and try again", current_version=row.version)
    _may(session, who, row, action)
    target = flow.next_state(row.state, action)
    note = (note or "").strip() or None
    needs_note = action in flow.ACTIONS and flow.ACTIONS[action].needs_note
    if (needs_note or action in ("request_extension", "refuse_extension")) and not note:
        raise InvalidInput(f"{action} needs a reason (note)", field="note")
    calendar = work_calendar(session)
    changes: dict[str, Any] = {"state": target}
    if action == "dispatch":
        if not assignee:
            raise InvalidInput("dispatch needs an assignee: a user name or a department", field="assignee")
        changes["assignee"] = assignee
    elif action == "return":
        changes["assignee"] = None
    elif action == "merge":
        kept = _merge_target(session, who, row, into)
        changes["duplicate_of"] = kept.id
        note = note or f"merged into case {kept.id}"
    if action == "request_extension":
        if extension is None:
            raise InvalidInput("request_extension needs the extension asked for (amount and unit)", field="extension")
        if row.extension_requested:
            raise InvalidInput("an extension is already waiting for approval", field="extension")
        changes["extension_requested"] = {"amount": extension.amount, "unit": extension.unit, "by": who.username,
                                          "note": note}
    elif action in ("approve_extension", "refuse_extension"):
        if not row.extension_requested:
            raise InvalidInput("no extension is waiting for approval", field="action")
        changes["extension_requested"] = None
        if action == "approve_extension":
            asked = Limit(row.extension_requested["amount"], row.extension_requested["unit"])
            changes["deadline"] = calendar.deadline(row.deadline or now, asked)
            changes["extensions"] = row.extensions + 1
    step = flow.clock(target)
    late = _late(calendar, row, now)
    if step != row.clock_step or action in RESTART:
        limit = _category(session, row.category_code).limits.get(step) if step else None
        changes.update(clock_step=step, clock_started_at=now if step else None,
                       deadline=calendar.deadline(now, limit) if limit else None,
                       clock_natural=bool(limit and limit.natural))
    if action == "verify_fail":
        changes["redos"] = row.redos + 1
    if target == "closed":
        changes["closed_at"] = now
    elif action == "reopen":
        changes["closed_at"] = None
    _update(session, case_id, changes)
    _event(session, case_id, who.username, action, row.state, target, note=note,
           assignee=changes.get("assignee", row.assignee), deadline_before=row.deadline,
           deadline_after=changes.get("deadline", row.deadline), late_minutes=late, at=now)
    if action == "merge":
        _merged_in(session, kept, row, who.username, now)
    return _view(session, case_id, calendar, now)


def _merge_target(session: Session, who: Principal | None, row: Any, into: int | None) -> Any:
    """The case ``row`` may be merged into: another open, unmerged case of the same category, locked; visible to
    ``who`` (None: the resident, who names one of the duplicates offered). InvalidInput otherwise."""
    if into is None or into == row.id:
        raise InvalidInput("merge needs the case to merge into (another case's id)", code="case.merge_into",
                           field="into")
    if who is None:
        found = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id FOR UPDATE OF c"),
                                {"id": into}).one_or_none()
    else:
        visible, params = _visible(who)
        found = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id AND {visible} FOR UPDATE OF c"),
                                {**params, "id": into}).one_or_none()
    if (found is None or found.category_code != row.category_code or found.state in flow.TERMINAL
            or found.duplicate_of is not None):
        raise InvalidInput(f"case {into} is no open case of the same category to merge into", code="case.merge_into",
                           field="into", into=into)
    return found


def _merged_in(session: Session, kept: Any, merged: Any, actor: str, now: datetime) -> None:
    """The kept case's event of a merge (its state unchanged): the merged report's reporter now follows it."""
    _event(session, kept.id, actor, "merged_in", kept.state, kept.state, at=now,
           note=f"case {merged.id} ({merged.reporter_kind}) merged in: the same problem", assignee=kept.assignee)
    session.execute(text("UPDATE cases SET version = version + 1 WHERE id = :id"), {"id": kept.id})


def merge_reported(session: Session, tracking_code: str, into: int, *, within_m: float = DUPLICATE_WITHIN_M,
                   metric_srid: int = METRIC_SRID, now: datetime | None = None) -> dict[str, Any]:
    """The resident who has just reported merges their report (still ``reported``, made without an account)
    into ``into``, one of the duplicates offered (:func:`duplicates_near` at its place now). NotFound for an
    unknown code; Conflict (409) once it is registered or merged; InvalidInput for a case that is not offered.
    Answers :func:`track` of the report (now showing the kept case's progress)."""
    now = _now(now)
    row = by_code(session, tracking_code, lock=True)
    if row.reporter_user is not None:
        raise NotFound(NO_SUCH_CODE, code="case.tracking_code")
    target = flow.next_state(row.state, "merge")
    if row.state != "reported":
        raise Conflict("the report is already registered: the dispatcher decides on merging now",
                       code="case.merge_late", state=row.state)
    offered = {d["id"] for d in duplicates_near(session, row.category_code, row.lon, row.lat, within_m=within_m,
                                                metric_srid=metric_srid, besides=row.id)}
    if into not in offered:
        raise InvalidInput(f"case {into} is not one of the duplicates offered for this report", code="case.merge_into",
                           field="into", into=into)
    kept = _merge_target(session, None, row, into)
    _update(session, row.id, {"state": target, "duplicate_of": kept.id, "clock_step": None, "clock_started_at": None,
                              "deadline": None, "clock_natural": False})
    _event(session, row.id, "resident", "merge", row.state, target, note=f"merged into case {kept.id}",
           deadline_before=row.deadline, at=now)
    _merged_in(session, kept, row, "resident", now)
    return track(session, tracking_code, now=now)


def _may(session: Session, who: Principal, row: Any, action: str) -> None:
    """Forbidden unless ``who`` may take ``action`` on the case ``row`` (module docstring)."""
    if who.role == "admin":
        return
    if action in DISPATCH or action == "merge":
        who.require_role("planner")
    elif action in HANDLE:
        if row.assignee not in _holders(who):
            raise Forbidden(f"only the case's assignee ({row.assignee or 'nobody yet'}) handles it")
    elif action in VERIFY:
        if row.assignee == who.username:
            raise Forbidden("a case is verified by someone other than its handler")
        if who.role == "grid_worker":
            if row.grid_id not in who.grid_ids:
                raise Forbidden("grid workers verify the cases of their own grids")
        else:
            who.require_role("planner")


def _late(calendar: WorkCalendar, row: Any, now: datetime) -> float | None:
    """Minutes past the running step's deadline at ``now`` (None when on time or without a clock)."""
    if row.deadline is None:
        return None
    left = calendar.remaining(now, row.deadline, natural=row.clock_natural)
    return round(-left, 1) if left < 0 else None


def _update(session: Session, case_id: int, changes: dict[str, Any]) -> None:
    sets = ", ".join(f"{k} = :{k}" if k != "extension_requested" else "extension_requested = CAST(:extension_requested AS jsonb)"
                     for k in changes)
    params = {**changes, "id": case_id}
    if "extension_requested" in changes:
        params["extension_requested"] = None if changes["extension_requested"] is None else json.dumps(
            changes["extension_requested"], ensure_ascii=False)
    session.execute(text(f"UPDATE cases SET {sets}, version = version + 1 WHERE id = :id"), params)


def _event(session: Session, case_id: int, actor: str, action: str, source: str | None, target: str, *,
           note: str | None, at: datetime, assignee: str | None = None, deadline_before: datetime | None = None,
           deadline_after: datetime | None = None, late_minutes: float | None = None) -> None:
    """One row of ``case_events`` at ``at``: the instant the action took effect (the ``now`` its deadlines and
    lateness were computed from), so that step times measured from events agree with them."""
    session.execute(text("""
        INSERT INTO case_events (case_id, at, actor, action, from_state, to_state, note, assignee, deadline_before,
                                 deadline_after, late_minutes)
        VALUES (:case, :at, :actor, :action, :source, :target, :note, :assignee, :before, :after, :late)"""),
        {"case": case_id, "at": at, "actor": actor, "action": action, "source": source, "target": target,
         "note": note, "assignee": assignee, "before": deadline_before, "after": deadline_after,
         "late": late_minutes})


# -- reading --------------------------------------------------------------------------------------------------------

_COLUMNS = """c.id, c.tracking_code, c.category_code, k.name AS category, k.department, ST_X(c.location) AS lon,
    ST_Y(c.location) AS lat, g.code AS grid_code, c.grid_id, c.community_code, c.description, c.reporter_kind,
    c.reporter_user, c.reporter_name, c.reporter_phone, c.state, c.priority, c.assignee, c.clock_step, c.clock_natural, c.deadline,
    c.extension_requested, c.extensions, c.redos, c.version, c.reported_at, c.closed_at, c.duplicate_of,
    c.supervised_at, c.supervised_by, c.supervision_note, c.satisfaction, c.satisfaction_at,
    (SELECT array_agg(p.name || ' · ' || d.name ORDER BY p.name, d.code) FROM department_grids d
     JOIN departments p ON p.credit_code = d.department_code WHERE d.id = ANY(c.department_grid_ids)) AS department_grids"""
TERMINAL_SQL = ", ".join(f"'{state}'" for state in sorted(flow.TERMINAL))
"""The terminal states as SQL constants: ``c.state NOT IN (…)`` is the predicate of the covering index of unfinished
cases (migration 0023), which the planner uses only when the query states it with constants."""
_JOINS = "JOIN case_categories k ON k.code = c.category_code LEFT JOIN grids g ON g.id = c.grid_id"
_FROM = "cases c " + _JOINS


def _holders(who: Principal) -> list[str]:
    """The assignee names that are the caller: their user name, and a department account's department."""
    return [who.username, who.department] if who.role == "department" and who.department else [who.username]


def _visible_parts(who: Principal) -> tuple[str, str, dict[str, Any]]:
    """The cases ``who`` sees (module docstring) as two SQL predicates on ``cases c``, and their parameters:
    ``area``, the cases of the caller's area (:func:`~spatial.store.scope.scope_sql`; 'FALSE' for a department),
    and ``own``, those assigned to or reported by the caller (a department: ever dispatched to it), wherever."""
    if who.role == "department":
        return "FALSE", ("(c.assignee = ANY(CAST(:holders AS text[])) OR c.reporter_user = :me OR EXISTS ("
                         "SELECT 1 FROM case_events e WHERE e.action = 'dispatch' AND e.case_id = c.id "
                         "AND e.assignee = ANY(CAST(:holders AS text[]))))"), {"holders": _holders(who),
                                                                                "me": who.username}
    area, params = scope_sql(who.area, grid_col="c.grid_id", community_col="c.community_code")
    return area, "(c.assignee = :me OR c.reporter_user = :me)", {**params, "me": who.username}


def _visible(who: Principal) -> tuple[str, dict[str, Any]]:
    """SQL predicate (on ``cases c``) of the cases ``who`` sees (module docstring), and its parameters."""
    area, own, params = _visible_parts(who)
    return (own if area == "FALSE" else f"({area} OR {own})"), params


def _count_sql(who: Principal, filters: list[str], late: str | None) -> str:
    """A statement counting the cases ``who`` sees that meet ``filters`` and ``late`` (a deadline test, or None),
    with the parameters of :func:`_visible` and of the filters.

    A caller with an area counts two disjoint parts, each on its own indexes: the cases of the area, then their
    own outside it (``IS NOT TRUE``: a case without a community is outside). Counted as one ``area OR own``, the
    planner can use no index of the area (decision 0028): it read every late case of the city to count a
    subdistrict's. For a division (a code range, :func:`~spatial.store.scope.is_code_range`) the deadline test is
    applied past an ``OFFSET 0`` fence: the planner estimates it among the unfinished cases a hundred times too
    selective and would walk the deadline-led index of the whole city instead of the division's range of
    ``cases_open_area`` (migration 0030)."""
    area, own, _ = _visible_parts(who)
    fenced = late is not None and is_code_range(who.area)

    def part(seen: str) -> str:
        if fenced:
            return (f"SELECT count(*) FROM (SELECT c.deadline FROM cases c WHERE {' AND '.join([seen, *filters])} "
                    f"OFFSET 0) c WHERE {late}")
        return f"SELECT count(*) FROM cases c WHERE {' AND '.join([seen, *filters, *([late] if late else [])])}"

    if area in ("TRUE", "FALSE"):  # everything (an admin), or their own cases only (a department)
        return part("TRUE" if area == "TRUE" else own)
    return f"SELECT ({part(area)}) + ({part(f'({area}) IS NOT TRUE AND {own}')})"


def locked_case(session: Session, who: Principal, case_id: int) -> Any:
    visible, params = _visible(who)
    row = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id AND {visible} FOR UPDATE OF c"),
                          {**params, "id": case_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"case {case_id} does not exist or is not in your area")
    return row


def _view(session: Session, case_id: int, calendar: WorkCalendar, now: datetime) -> CaseView:
    row = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id"), {"id": case_id}).one()
    return _as_view(row, calendar, now)


def _as_view(row: Any, calendar: WorkCalendar, now: datetime, now_clock: float | None = None) -> CaseView:
    """The caller's view of a row of :data:`_COLUMNS`; ``now_clock``: ``calendar.clock(now)`` when the caller
    makes many views at one instant (a list), to compute it once."""
    if row.deadline is None:
        remaining = None
    elif row.clock_natural:
        remaining = round(calendar.remaining(now, row.deadline, natural=True), 1)
    else:
        now_clock = calendar.clock(now) if now_clock is None else now_clock
        remaining = round(calendar.clock(row.deadline) - now_clock, 1)
    return CaseView(
        id=row.id, tracking_code=row.tracking_code, category_code=row.category_code, category=row.category,
        lon=row.lon, lat=row.lat, grid_code=row.grid_code, community_code=row.community_code,
        description=row.description, reporter_kind=row.reporter_kind, reporter_name=mask_name(row.reporter_name),
        reporter_phone=mask_phone(row.reporter_phone), state=row.state, state_label=flow.STATES[row.state][0],
        priority=row.priority, assignee=row.assignee, department=row.department, clock_step=row.clock_step,
        deadline=row.deadline, remaining_min=remaining, overdue=remaining is not None and remaining < 0,
        extension_requested=row.extension_requested, version=row.version, reported_at=row.reported_at,
        closed_at=row.closed_at, allowed=flow.allowed(row.state), duplicate_of=row.duplicate_of,
        supervised=None if row.supervised_at is None else {"at": row.supervised_at, "by": row.supervised_by,
                                                           "note": row.supervision_note},
        satisfaction=row.satisfaction, department_grids=list(row.department_grids or ()))


def get_case(session: Session, who: Principal, case_id: int, *, now: datetime | None = None) -> CaseView:
    """One case in the caller's view (OutOfScope, 404, when it does not exist or is not theirs to see)."""
    visible, params = _visible(who)
    row = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id AND {visible}"),
                          {**params, "id": case_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"case {case_id} does not exist or is not in your area")
    return _as_view(row, work_calendar(session), _now(now))


def list_cases(session: Session, who: Principal, *, state: str | None = None, overdue: bool = False,
               mine: bool = False, grid_code: str | None = None, supervised: bool = False, open_only: bool = False,
               limit: int = 100, offset: int = 0, now: datetime | None = None) -> tuple[int, list[CaseView]]:
    """(total, one page) of the caller's visible cases, most urgent deadline first. ``overdue``: open cases past
    their running step's deadline (the supervision list, 督办); ``mine``: assigned to the caller (or their
    department); ``supervised``: flagged by a leader (督办) and still open; ``open_only``: not finished."""
    if state is not None and state not in flow.STATES:
        raise InvalidInput(f"state must be one of {', '.join(flow.STATES)}", field="state")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    now = _now(now)
    visible, params = _visible(who)
    filters, late = [], None  # on ``cases c`` alone: the page (ids only: a narrow sort) and the count need no join
    if state:
        filters.append("c.state = :state")
        params["state"] = state
    if overdue:
        filters.append(f"c.state NOT IN ({TERMINAL_SQL}, 'deferred')")
        late = "c.deadline < :now"
        params["now"] = now
    if mine:
        filters.append("c.assignee = ANY(CAST(:holders AS text[]))")
        params["holders"] = _holders(who)
    if supervised:
        filters.append("c.supervised_at IS NOT NULL")
    if supervised or open_only:
        filters.append(f"c.state NOT IN ({TERMINAL_SQL})")
    if grid_code:
        filters.append("c.grid_id = (SELECT id FROM grids WHERE code = :grid_code)")
        params["grid_code"] = grid_code
    clause = " AND ".join([visible, *filters, *([late] if late else [])])
    rows = plain_rows(session.execute(text(f"""
        SELECT {_COLUMNS}
        FROM (SELECT c.id FROM cases c WHERE {clause} ORDER BY c.deadline NULLS LAST, c.id LIMIT :limit OFFSET :offset)
             page JOIN cases c ON c.id = page.id {_JOINS}
        ORDER BY c.deadline NULLS LAST, c.id"""), {**params, "limit": limit, "offset": offset}))
    if offset == 0 and len(rows) < limit:  # the whole list is on this page
        total = len(rows)
    else:
        total = session.execute(text(_count_sql(who, filters, late)), params).scalar_one()
    calendar = work_calendar(session)
    now_clock = calendar.clock(now)
    return total, [_as_view(r, calendar, now, now_clock) for r in rows]


def history(session: Session, who: Principal, case_id: int) -> list[dict[str, Any]]:
    """Every recorded transition of a visible case, oldest first."""
    get_case(session, who, case_id)
    rows = session.execute(text(
        "SELECT at, actor, action, from_state, to_state, note, assignee, deadline_before, deadline_after, "
        "late_minutes FROM case_events WHERE case_id = :id ORDER BY at, id"), {"id": case_id}).mappings().all()
    return [dict(r) for r in rows]


NO_SUCH_CODE = "no case has this tracking code: check it (10 letters and digits, no 0, O, 1 or I)"


def by_code(session: Session, tracking_code: str, *, lock: bool = False) -> Any:
    row = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.tracking_code = :code"
                               + (" FOR UPDATE OF c" if lock else "")),
                          {"code": tracking_code.strip().upper()}).one_or_none()
    if row is None:
        raise NotFound(NO_SUCH_CODE, code="case.tracking_code")
    return row


def track(session: Session, tracking_code: str, *, now: datetime | None = None) -> dict[str, Any]:
    """What a reporter without an account sees by tracking code: category, state, steps with their times — no
    personal data, no note of the handlers, no assignee name. A report merged into another case (``merged``
    true) shows the kept case's state and steps after its own; ``merged_reports`` counts the reports merged into
    the case. ``photos``: the ids of the case's photos (:func:`spatial.store.case_photos.public_photo`);
    ``rating``: the satisfaction given (None), and ``may_rate`` whether it may be given now (closed, not yet)."""
    row = by_code(session, tracking_code)
    own = row
    if row.duplicate_of is not None:
        row = session.execute(text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE c.id = :id"), {"id": row.duplicate_of}).one()
    ids = [own.id] if own.id == row.id else [own.id, row.id]
    steps = session.execute(text(
        "SELECT case_id, at, action, to_state FROM case_events WHERE case_id = ANY(:ids) ORDER BY at, id"),
        {"ids": ids}).all()
    extra = session.execute(text("""
        SELECT (SELECT count(*) FROM cases WHERE duplicate_of = :id) AS merged,
               (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM case_photos WHERE case_id = ANY(:ids)) AS photos"""),
        {"id": row.id, "ids": ids}).one()
    return {"tracking_code": own.tracking_code, "category": row.category, "department": row.department,
            "state": row.state, "state_label": flow.STATES[row.state][0], "reported_at": own.reported_at,
            "closed_at": row.closed_at, "deadline": row.deadline, "merged": own.id != row.id,
            "merged_reports": extra.merged, "photos": list(extra.photos),
            "rating": own.satisfaction, "may_rate": row.state == "closed" and own.satisfaction is None,
            "steps": [{"at": at, "state": s, "label": flow.STATES[s][0],
                       "action": action if action in ("merge", "merged_in") else None}
                      for case_id, at, action, s in steps
                      if case_id == own.id or action != "report"]}


def where_now(session: Session, case_id: int) -> dict[str, Any]:
    """The grid and community the case's point falls in today (they may differ from the case's, fixed at report
    time, after a redraw)."""
    row = session.execute(text("""
        SELECT (SELECT g.code FROM grids g WHERE g.retired_at IS NULL AND ST_Intersects(g.boundary, c.location)
                ORDER BY g.code LIMIT 1) AS grid_code,
               (SELECT d.code FROM divisions d WHERE d.level = 'community' AND ST_Intersects(d.boundary, c.location)
                ORDER BY d.code LIMIT 1) AS community_code
        FROM cases c WHERE c.id = :id"""), {"id": case_id}).one()
    return {"grid_code": row.grid_code, "community_code": row.community_code}


# -- helpers --------------------------------------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    """``now``, or the current instant (UTC) when None."""
    return now if now is not None else datetime.now(timezone.utc)


now_or = _now


def _inet(address: str | None) -> str | None:
    """``address`` if it is an IP address (a test client or a Unix socket gives none), else None."""
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _tracking_code() -> str:
    return "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(10))


def parse_limit(amount: int, unit: str) -> Limit:
    """A :class:`Limit` from request fields, InvalidInput for a bad unit or amount."""
    if unit not in UNITS:
        raise InvalidInput(f"unit must be one of {', '.join(UNITS)}", field="unit")
    if not 0 < amount <= 10_000:
        raise InvalidInput("an extension is between 1 and 10,000 units", field="amount")
    return Limit(amount, unit)  # type: ignore[arg-type]


# -- the public listing (Open311 GeoReport v2) --------------------------------------------------------------------


@dataclass(frozen=True)
class PublicCase:
    """What anyone may read of a case: no description, no reporter, no assignee, no handler's note. ``lon``/``lat``
    EPSG:4326; ``place`` the community's name and the grid's (None when the case lies in no grid any more);
    ``updated_at`` the last recorded transition; ``deadline`` the running step's (None without a clock)."""

    tracking_code: str
    category_code: str
    category: str
    department: str
    state: str
    state_label: str
    lon: float
    lat: float
    place: str | None
    reported_at: datetime
    updated_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    media_key: str | None = None
    """The ``public_key`` of the case's first published photo (staff's, :mod:`spatial.store.case_photos`)."""

    @property
    def closed(self) -> bool:
        """Finished (closed or not accepted): Open311's ``closed``; every other state is ``open``."""
        return self.state in flow.TERMINAL


PUBLIC_DEFAULT_DAYS = 90
PUBLIC_MAX = 1000


def public_cases(session: Session, *, tracking_codes: list[str] | None = None,
                 category_codes: list[str] | None = None, start: datetime | None = None, end: datetime | None = None,
                 closed: bool | None = None, limit: int = PUBLIC_MAX, now: datetime | None = None
                 ) -> list[PublicCase]:
    """Cases anyone may list, newest first, without an account and without scope (:class:`PublicCase` holds no
    personal data). ``tracking_codes`` given: those cases, every other filter ignored (as Open311 says).
    Otherwise reported in [``start``, ``end``] (timezone-aware; ``start`` defaults to :data:`PUBLIC_DEFAULT_DAYS`
    days before ``end``, ``end`` to now, or to ``start`` when that is later), of ``category_codes`` (None: all), ``closed`` True/False/None (all);
    at most ``limit`` (1–:data:`PUBLIC_MAX`). A start after the end is InvalidInput; duplicates merged into
    another case are left out of lists but found by their code."""
    if not 1 <= limit <= PUBLIC_MAX:
        raise InvalidInput(f"limit must be between 1 and {PUBLIC_MAX}", field="limit")
    params: dict[str, Any] = {"limit": limit}
    if tracking_codes:
        where = ["c.tracking_code = ANY(:codes)"]
        params["codes"] = [code.strip().upper() for code in tracking_codes]
    else:
        if start is not None and end is not None and start > end:
            raise InvalidInput("start_date is after end_date", field="start_date")
        end = end or max(_now(now), start or _now(now))
        start = start or end - timedelta(days=PUBLIC_DEFAULT_DAYS)
        where = ["c.reported_at BETWEEN :start AND :end", "c.duplicate_of IS NULL"]
        params.update(start=start, end=end)
        if category_codes:
            where.append("c.category_code = ANY(:categories)")
            params["categories"] = category_codes
        if closed is not None:
            where.append(("" if closed else "NOT ") + "(c.state = ANY(:terminal))")
            params["terminal"] = sorted(flow.TERMINAL)
    rows = session.execute(text(f"""
        SELECT c.tracking_code, c.category_code, k.name AS category, k.department, c.state, ST_X(c.location) AS lon,
               ST_Y(c.location) AS lat, concat_ws(' · ', d.name, g.name) AS place, c.reported_at, c.deadline,
               c.closed_at, GREATEST(c.reported_at, (SELECT max(e.at) FROM case_events e WHERE e.case_id = c.id))
                   AS updated_at,
               (SELECT p.public_key FROM case_photos p WHERE p.case_id = c.id AND p.public_key IS NOT NULL
                ORDER BY p.id LIMIT 1) AS media_key
        FROM {_FROM} LEFT JOIN divisions d ON d.code = c.community_code
        WHERE {" AND ".join(where)} ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit"""), params).all()
    return [PublicCase(r.tracking_code, r.category_code, r.category, r.department, r.state, flow.STATES[r.state][0],
                       r.lon, r.lat, r.place or None, r.reported_at, r.updated_at, r.deadline, r.closed_at,
                       r.media_key)
            for r in rows]
