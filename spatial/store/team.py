"""The grid team (网格团队, "2+N", 三人小组; issue 17 §1, decision 0020): who serves a grid, and the checks.

A grid's team is its **grid workers** (``grid_assignments``: duty ``leader`` 网格长 or ``worker``, :mod:`spatial.
store.users`) and the **team members** of ``team_assignments``: police officers, medical staff and department
specialists assigned to the grid; building heads assigned to a micro-grid or a building; unit heads to a unit of a
building; volunteers to any of them. A team member's duty is their account's role (a police officer's duty is
``police``), so what they may see follows from the role (:mod:`spatial.access`) and what they are assigned to.

An assignment is valid over ``[valid_from, valid_to)``; it is *current* at ``now()`` when ``valid_from <= now()``
and ``valid_to`` is NULL or later. Ending one sets ``valid_to`` (the row stays: the team's history). Every
change is audited (``team_assign``, ``team_end``, object the user) and makes every server process forget the
callers it remembers (their area changed, :func:`spatial.store.users.principals_changed`).

Who: planners (and admins) manage the teams of the grids in their area; planners, inspectors, grid workers and
police officers read the team of a grid in their area, contacts included (colleagues call each other: the
contact is a work phone given for the duty; each read is audited, ``read_team``). Every other role gets Forbidden. The caller owns the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import Conflict, InvalidInput, NotFound, OutOfScope
from spatial.store import audit
from spatial.store.scope import grid_scope, prefix_bounds, prefix_range
from spatial.store.users import principals_changed
from spatial.vocab import TEAM_DUTIES

MANAGE_ROLES = ("planner",)
READ_ROLES = ("planner", "inspector", "grid_worker", "police")
GRID_DUTIES = ("leader", "worker")
"""Grid workers' duties (``grid_assignments.duty``); every other duty is a team assignment's."""
MIN_WORKERS = 2
"""A grid has at least this many grid workers (2–3 per grid, shared/domain.md §1)."""
PHONE = re.compile(r"1[0-9]{10}")
TARGETS = {"police": ("grid",), "medical": ("grid",), "specialist": ("grid",),
           "building_head": ("micro_grid", "building"), "unit_head": ("building",),
           "volunteer": ("grid", "micro_grid", "building")}
"""What each team duty is assigned to."""
CURRENT = "a.valid_from <= now() AND (a.valid_to IS NULL OR a.valid_to > now())"


@dataclass(frozen=True)
class Member:
    """One member of a grid's team: a grid worker (``assignment_id`` None; they leave a grid through their account,
    ``PATCH /api/users``) or a team assignment. ``target_kind`` 'grid' | 'micro_grid' | 'building', ``target`` the
    grid code, the micro-grid's number in its grid, or the building code; ``contact`` an 11-digit work phone."""

    username: str
    display_name: str | None
    role: str
    duty: str
    target_kind: str
    target: str
    assignment_id: int | None = None
    unit: str | None = None
    contact: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None


@dataclass(frozen=True)
class MicroGridHeads:
    """A micro-grid of the grid, its buildings, and the building heads serving it (assigned to it or to one of its
    buildings; ``head_name`` of the micro-grid row, a head without an account, counts too)."""

    id: int
    seq: int
    name: str | None
    buildings: int
    heads: tuple[str, ...]


@dataclass(frozen=True)
class GridTeam:
    grid_id: int
    grid_code: str
    grid_name: str | None
    members: tuple[Member, ...]
    micro_grids: tuple[MicroGridHeads, ...] = ()


@dataclass(frozen=True)
class TeamChecks:
    """Grids (codes) of the caller's area with fewer than :data:`MIN_WORKERS` grid workers, without a leader, and
    without a police officer ("2+N"); micro-grids without a building head (``{grid_code, seq, id}``)."""

    grids: tuple[dict[str, Any], ...]
    """Every grid checked: ``{code, name, workers}``."""
    short_of_workers: tuple[dict[str, Any], ...] = ()
    without_leader: tuple[str, ...] = ()
    without_police: tuple[str, ...] = ()
    micro_grids_without_head: tuple[dict[str, Any], ...] = field(default_factory=tuple)


# -- who a team member is (the caller's area) ----------------------------------------------------------------------


def current_targets(session: Session, user_id: int) -> tuple[frozenset[int], frozenset[int]]:
    """The grids and the buildings of a team member's current assignments: (grid ids, building ids). Grids are
    those assigned as grids (police, medical, specialists, volunteers); buildings those assigned as buildings and
    the current buildings of assigned micro-grids (building and unit heads, volunteers)."""
    rows = session.execute(text(f"""
        SELECT a.grid_id, a.building_id, a.micro_grid_id FROM team_assignments a
        WHERE a.user_id = :u AND {CURRENT}"""), {"u": user_id}).all()
    grids = frozenset(r.grid_id for r in rows if r.grid_id is not None)
    buildings = {r.building_id for r in rows if r.building_id is not None}
    micro = [r.micro_grid_id for r in rows if r.micro_grid_id is not None]
    if micro:
        buildings |= set(session.scalars(text("SELECT id FROM buildings WHERE micro_grid_id = ANY(:m)"), {"m": micro}))
    return grids, frozenset(buildings)


# -- assigning -----------------------------------------------------------------------------------------------------


def _grid_in_area(session: Session, who: Principal, grid_id: int) -> Any:
    scope, params = grid_scope(who.area)
    row = session.execute(text(f"SELECT g.id, g.code, g.name FROM grids g WHERE g.id = :id AND g.retired_at IS NULL "
                               f"AND {scope}"), {**params, "id": grid_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"grid {grid_id} is not a current grid of your area", code="team.grid_outside")
    return row


def grid_by_code(session: Session, who: Principal, code: str) -> Any:
    """The current grid ``code`` (id, code, name) if it lies in the caller's area; OutOfScope otherwise."""
    gid = session.scalar(text("SELECT id FROM grids WHERE code = :c AND retired_at IS NULL"), {"c": code})
    if gid is None:
        raise OutOfScope(f"no current grid {code} in your area", code="team.grid_outside")
    return _grid_in_area(session, who, gid)


def _target(session: Session, grid_code: str | None, micro_grid_id: int | None,
            building_code: str | None) -> tuple[str, int, int]:
    """(target kind, target id, grid id) of exactly one of the three; InvalidInput / NotFound otherwise."""
    given = [(k, v) for k, v in (("grid", grid_code), ("micro_grid", micro_grid_id), ("building", building_code))
             if v is not None]
    if len(given) != 1:
        raise InvalidInput("name exactly one of grid_code, micro_grid_id and building_code", code="team.one_target")
    kind, value = given[0]
    if kind == "grid":
        row = session.execute(text("SELECT id, id AS grid_id FROM grids WHERE code = :v AND retired_at IS NULL"),
                              {"v": value}).one_or_none()
    elif kind == "micro_grid":
        row = session.execute(text("SELECT id, grid_id FROM micro_grids WHERE id = :v"), {"v": value}).one_or_none()
    else:
        row = session.execute(text("SELECT id, grid_id FROM buildings WHERE code = :v"), {"v": value}).one_or_none()
    if row is None or row.grid_id is None:
        raise NotFound(f"no {kind.replace('_', '-')} {value}", code="team.no_target", target_kind=kind, target=str(value))
    return kind, row.id, row.grid_id


def _user(session: Session, username: str) -> Any:
    row = session.execute(text("SELECT id, username, role FROM users WHERE username = :u AND active"),
                          {"u": username}).one_or_none()
    if row is None:
        raise NotFound(f"no active user {username}", code="team.no_user", username=username)
    return row


def assign(session: Session, who: Principal, *, username: str, duty: str, grid_code: str | None = None,
           micro_grid_id: int | None = None, building_code: str | None = None, unit: str | None = None,
           contact: str | None = None, valid_from: datetime | None = None) -> Member:
    """Put ``username`` on a grid's team with ``duty`` (:data:`spatial.vocab.TEAM_DUTIES`) on one target.

    ``leader`` / ``worker``: a grid worker on a grid (``grid_assignments``; a new leader makes the grid's former
    leader a worker: one leader per grid). Any other duty must be the user's role and fit its target
    (:data:`TARGETS`; a unit head names the ``unit``), and becomes a team assignment from ``valid_from``
    (default now). ``contact``: an 11-digit mobile number. Planners (and admins) of the target's grid only
    (OutOfScope beyond their area). Conflict for a current assignment of the same duty and target."""
    who.require_role(*MANAGE_ROLES)
    if duty not in TEAM_DUTIES:
        raise InvalidInput(f"unknown duty {duty!r}; duties are {', '.join(TEAM_DUTIES)}", code="team.duty")
    if contact is not None and not PHONE.fullmatch(contact):
        raise InvalidInput("a contact is an 11-digit mobile number starting with 1", code="team.contact")
    unit = (unit or "").strip() or None
    if unit is not None and len(unit) > 20:
        raise InvalidInput("a unit has at most 20 characters", code="team.unit")
    kind, target_id, grid_id = _target(session, grid_code, micro_grid_id, building_code)
    grid = _grid_in_area(session, who, grid_id)
    user = _user(session, username)
    if duty in GRID_DUTIES:
        if user.role != "grid_worker" or kind != "grid":
            raise InvalidInput(f"{duty} is a grid worker's duty on a grid", code="team.duty_role", duty=duty,
                               role=user.role)
        return _assign_grid_worker(session, who, user, grid, duty, contact)
    if user.role != duty:
        raise InvalidInput(f"the duty {duty} is for accounts with the role {duty}; {username} is {user.role}",
                           code="team.duty_role", duty=duty, role=user.role)
    if kind not in TARGETS[duty] or (unit is not None) != (duty == "unit_head"):
        raise InvalidInput(f"a {duty} is assigned to {' or '.join(TARGETS[duty])}"
                           + (" with its unit" if duty == "unit_head" else ""), code="team.target", duty=duty,
                           target_kind=kind)
    try:
        with session.begin_nested():
            assignment_id = session.execute(text("""
                INSERT INTO team_assignments (user_id, duty, grid_id, micro_grid_id, building_id, unit, contact,
                                              valid_from, created_by)
                VALUES (:user, :duty, :grid, :micro, :building, :unit, :contact, coalesce(:since, now()), :by)
                RETURNING id"""), {"user": user.id, "duty": duty, "grid": target_id if kind == "grid" else None,
                                   "micro": target_id if kind == "micro_grid" else None,
                                   "building": target_id if kind == "building" else None, "unit": unit,
                                   "contact": contact, "since": valid_from, "by": who.username}).scalar_one()
    except IntegrityError as exc:
        raise Conflict(f"{username} already has this duty there", code="team.duplicate") from exc
    audit.record(session, who, "team_assign", object_type="user", object_id=username,
                 fields=["duty", kind], result=f"{duty} on {kind} {grid_code or micro_grid_id or building_code}"
                 + (f" unit {unit}" if unit else "") + f" (grid {grid.code}), assignment {assignment_id}")
    principals_changed(session)
    return next(m for m in _members(session, grid.id, include_ended=True) if m.assignment_id == assignment_id)


def _assign_grid_worker(session: Session, who: Principal, user: Any, grid: Any, duty: str,
                        contact: str | None) -> Member:
    if duty == "leader":
        session.execute(text("UPDATE grid_assignments SET duty = 'worker' WHERE grid_id = :g AND duty = 'leader' "
                             "AND user_id <> :u"), {"g": grid.id, "u": user.id})
    session.execute(text("""
        INSERT INTO grid_assignments (user_id, grid_id, duty, contact) VALUES (:u, :g, :duty, :contact)
        ON CONFLICT (user_id, grid_id) DO UPDATE SET duty = EXCLUDED.duty,
            contact = coalesce(EXCLUDED.contact, grid_assignments.contact)"""),
        {"u": user.id, "g": grid.id, "duty": duty, "contact": contact})
    audit.record(session, who, "assign", object_type="user", object_id=user.username, fields=["grids", "duty"],
                 result=f"{duty} of grid {grid.code}")
    principals_changed(session)
    return next(m for m in _members(session, grid.id) if m.username == user.username and m.duty == duty)


def end_assignment(session: Session, who: Principal, assignment_id: int, *, at: datetime | None = None) -> Member:
    """End a current team assignment at ``at`` (default now): its ``valid_to``. Planners (and admins) of its grid;
    OutOfScope for an unknown assignment or one outside their area; Conflict if it has already ended."""
    who.require_role(*MANAGE_ROLES)
    row = session.execute(text(f"""
        SELECT a.id, a.valid_to, u.username, {_GRID_OF} AS grid_id FROM team_assignments a JOIN users u ON u.id = a.user_id
        WHERE a.id = :id FOR UPDATE OF a"""), {"id": assignment_id}).one_or_none()
    if row is None or row.grid_id is None:
        raise OutOfScope(f"no team assignment {assignment_id} in your area", code="team.no_assignment")
    grid = _grid_in_area(session, who, row.grid_id)
    if row.valid_to is not None:
        raise Conflict(f"team assignment {assignment_id} has already ended", code="team.ended")
    ended = session.execute(text("UPDATE team_assignments SET valid_to = greatest(valid_from, coalesce(:at, now())) "
                                 "WHERE id = :id RETURNING valid_to"), {"id": assignment_id, "at": at}).scalar_one()
    audit.record(session, who, "team_end", object_type="user", object_id=row.username, fields=["valid_to"],
                 result=f"assignment {assignment_id} (grid {grid.code}) ended {ended.isoformat()}")
    principals_changed(session)
    return next(m for m in _members(session, grid.id, include_ended=True) if m.assignment_id == assignment_id)


# -- reading -------------------------------------------------------------------------------------------------------

_GRID_OF = ("coalesce(a.grid_id, (SELECT m.grid_id FROM micro_grids m WHERE m.id = a.micro_grid_id), "
            "(SELECT b.grid_id FROM buildings b WHERE b.id = a.building_id))")

_MEMBERS = f"""
SELECT * FROM (
    SELECT NULL::integer AS assignment_id, u.username, u.display_name, u.role, ga.duty, 'grid' AS target_kind,
           g.code AS target, NULL AS unit, ga.contact, NULL::timestamptz AS valid_from, NULL::timestamptz AS valid_to,
           0 AS rank
    FROM grid_assignments ga JOIN users u ON u.id = ga.user_id JOIN grids g ON g.id = ga.grid_id
    WHERE ga.grid_id = :grid AND u.active
    UNION ALL
    SELECT a.id, u.username, u.display_name, u.role, a.duty,
           CASE WHEN a.grid_id IS NOT NULL THEN 'grid' WHEN a.micro_grid_id IS NOT NULL THEN 'micro_grid'
                ELSE 'building' END,
           coalesce(g.code, m.seq::text, b.code), a.unit, a.contact, a.valid_from, a.valid_to, 1
    FROM team_assignments a JOIN users u ON u.id = a.user_id
    LEFT JOIN grids g ON g.id = a.grid_id LEFT JOIN micro_grids m ON m.id = a.micro_grid_id
    LEFT JOIN buildings b ON b.id = a.building_id
    WHERE {_GRID_OF} = :grid AND u.active AND ({CURRENT} OR :ended)
) t
ORDER BY rank, CASE duty WHEN 'leader' THEN 0 WHEN 'worker' THEN 1 WHEN 'police' THEN 2 WHEN 'medical' THEN 3
                         WHEN 'specialist' THEN 4 WHEN 'building_head' THEN 5 WHEN 'unit_head' THEN 6 ELSE 7 END,
         target, username"""


def _members(session: Session, grid_id: int, *, include_ended: bool = False) -> list[Member]:
    """The current members of the grid's team (:data:`_MEMBERS`); ``include_ended``: with the ended and the
    not yet begun team assignments too."""
    rows = session.execute(text(_MEMBERS), {"grid": grid_id, "ended": include_ended}).mappings().all()
    return [Member(**{k: v for k, v in r.items() if k != "rank"}) for r in rows]


def grid_team(session: Session, who: Principal, grid_code: str) -> GridTeam:
    """The current team of grid ``grid_code``: its members (grid workers first, leader first) and its micro-grids
    with their building heads. :data:`READ_ROLES` (and admins) of the grid's area; OutOfScope beyond it."""
    who.require_role(*READ_ROLES)
    grid = grid_by_code(session, who, grid_code)
    micro = session.execute(text(f"""
        SELECT m.id, m.seq, m.name, (SELECT count(*) FROM buildings b WHERE b.micro_grid_id = m.id) AS buildings,
               array_remove(array_cat(ARRAY[m.head_name], ARRAY(
                   SELECT DISTINCT coalesce(u.display_name, u.username) {_HEADS_OF_M})), NULL) AS heads
        FROM micro_grids m WHERE m.grid_id = :g ORDER BY m.seq"""), {"g": grid.id}).all()
    members = tuple(_members(session, grid.id))
    audit.record_read(session, who, "read_team", object_type="grid", object_id=grid.code,
                      fields=["members", "contact"], result=f"{len(members)} members")
    return GridTeam(grid.id, grid.code, grid.name, members,
                    tuple(MicroGridHeads(r.id, r.seq, r.name, r.buildings, tuple(r.heads)) for r in micro))


_HEADS_OF_M = f"""FROM team_assignments a JOIN users u ON u.id = a.user_id AND u.active
    WHERE a.duty = 'building_head' AND {CURRENT} AND (a.micro_grid_id = m.id OR a.building_id IN (
        SELECT b.id FROM buildings b WHERE b.micro_grid_id = m.id))"""
"""The current building heads of micro-grid ``m`` (assigned to it or to one of its buildings), as FROM … WHERE."""

_CHECKS = f"""
WITH g AS (SELECT g.id, g.code, g.name FROM grids g WHERE g.retired_at IS NULL AND {{scope}} AND {prefix_range('g.code')}),
w AS (SELECT ga.grid_id, count(*) AS workers, bool_or(ga.duty = 'leader') AS leader
      FROM grid_assignments ga JOIN users u ON u.id = ga.user_id AND u.active AND u.role = 'grid_worker'
      GROUP BY ga.grid_id),
p AS (SELECT DISTINCT a.grid_id FROM team_assignments a JOIN users u ON u.id = a.user_id AND u.active
      WHERE a.duty = 'police' AND {CURRENT})
SELECT g.id, g.code, g.name, coalesce(w.workers, 0) AS workers, coalesce(w.leader, false) AS leader,
       p.grid_id IS NOT NULL AS police, coalesce(h.ids, ARRAY[]::integer[]) AS headless,
       coalesce(h.seqs, ARRAY[]::integer[]) AS headless_seq
FROM g LEFT JOIN w ON w.grid_id = g.id LEFT JOIN p ON p.grid_id = g.id
LEFT JOIN LATERAL (SELECT array_agg(m.id ORDER BY m.seq) AS ids, array_agg(m.seq ORDER BY m.seq) AS seqs
                   FROM micro_grids m WHERE m.grid_id = g.id AND m.head_name IS NULL
                   AND NOT EXISTS (SELECT 1 {_HEADS_OF_M})) h ON true
ORDER BY g.code"""


def checks(session: Session, who: Principal, *, division_code: str | None = None) -> TeamChecks:
    """The team checks over the current grids of the caller's area (within ``division_code``'s subtree if given,
    a 12-digit division code or a 14-digit grid code): grids with fewer than :data:`MIN_WORKERS` active grid
    workers, grids without a leader, grids without a police officer, micro-grids without a building head.
    :data:`READ_ROLES` (and admins)."""
    who.require_role(*READ_ROLES)
    prefix = ""
    if division_code:
        from spatial.geometry.codes import scope_prefix

        if not re.fullmatch(r"[0-9]{12}([0-9]{2})?", division_code):
            raise InvalidInput("a division code has 12 digits, a grid code 14", code="team.division")
        prefix = scope_prefix(division_code) if len(division_code) == 12 else division_code
    scope, params = grid_scope(who.area)
    rows = session.execute(text(_CHECKS.format(scope=scope)), {**params, **prefix_bounds(prefix)}).all()
    return TeamChecks(
        grids=tuple({"code": r.code, "name": r.name, "workers": r.workers} for r in rows),
        short_of_workers=tuple({"grid_code": r.code, "workers": r.workers} for r in rows if r.workers < MIN_WORKERS),
        without_leader=tuple(r.code for r in rows if not r.leader),
        without_police=tuple(r.code for r in rows if not r.police),
        micro_grids_without_head=tuple({"grid_code": r.code, "id": i, "seq": s} for r in rows
                                       for i, s in zip(r.headless, r.headless_seq, strict=True)))

