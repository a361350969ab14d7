"""The command centre's figures (大屏): per community of a division, in the caller's area, what the wall screen shows.

One row per community (and the total): households (the buildings' counts, as the grids layer sums them) and
persons (current residents of the population ledger, 实有人口; 0 where no ledger was imported); screening coverage of the open campaigns
(households visited / targeted, all open campaigns together); open and overdue cases (open: not closed or
rejected; overdue: open and past their working-time deadline); openings of the enclosures with the inspector's
definitions (:func:`spatial.store.openings.opening_counts`) plus the checkpoints staffed *now* (their schedule
covers this minute of the week, Asia/Shanghai); the risk zones in force per level and the highest level
(:func:`spatial.store.risk_zones.zones_per_community`), which the screen colours communities by. Only counts, never a
household or a person: a viewer may see them.

Costs: four grouped statements (households/persons, campaigns, cases, enclosures) and the openings of the
division's enclosures read once; the screen polls it (``api/static/screen.js``). Screening coverage sums the
per-(campaign, grid) counters the database keeps (``campaign_grid_counts``, migration 0022) rather than joining
every target to its visit, which was nine tenths of a district's refresh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.case_flow import TERMINAL
from spatial.errors import NotFound
from spatial.geometry.codes import scope_prefix
from spatial.store import openings as op
from spatial.store import risk_zones
from spatial.store.scope import building_scope, grid_scope, prefix_bounds, prefix_range
from spatial.worktime import LOCAL

ROLES = ("viewer", "inspector", "planner", "grid_worker", "auditor")
"""Who may read the figures (admin always): counts only."""


@dataclass
class CommunityFigures:
    """The figures of one community (``code`` None: the total of the division)."""

    code: str | None
    name: str | None
    households: int = 0
    persons: int = 0
    targeted: int = 0
    screened: int = 0
    open_cases: int = 0
    overdue_cases: int = 0
    openings: dict[str, int] = field(default_factory=lambda: op.opening_counts([]))
    staffed_now: int = 0
    risk_severity: int | None = None
    risk_zones: dict[str, int] = field(default_factory=dict)

    @property
    def coverage(self) -> float | None:
        """Share of targeted households screened (0–1), None with no open campaign."""
        return round(self.screened / self.targeted, 4) if self.targeted else None

    def as_dict(self) -> dict:
        return {**asdict(self), "coverage": self.coverage}


@dataclass
class ScreenFigures:
    division: str
    name: str | None
    at: datetime
    communities: list[CommunityFigures]
    total: CommunityFigures


def _minute_of_week(at: datetime) -> int:
    local = at.astimezone(LOCAL)
    return local.weekday() * 1440 + local.hour * 60 + local.minute


def screen_figures(session: Session, who: Principal, division: str, *, at: datetime,
                   metric_srid: int = 4547) -> ScreenFigures:
    """The figures of the communities of ``division`` (a subdistrict, district or community code) the caller's
    area includes, at instant ``at`` (timezone-aware; overdue and staffed-now are judged then).
    NotFound when the division does not exist; communities outside the caller's area are left out (none: an
    empty list and zero totals)."""
    who.require_role(*ROLES)
    head = session.execute(text("SELECT code, name, level FROM divisions WHERE code = :c"), {"c": division}).first()
    if head is None:
        raise NotFound(f"division {division} does not exist", code="division.unknown", division=division)
    prefix = scope_prefix(head.code)
    gscope, gparams = grid_scope(who.area)
    bscope, bparams = building_scope(who.area)
    rows = {r.code: CommunityFigures(r.code, r.name) for r in session.execute(text(f"""
        SELECT d.code, d.name FROM divisions d
        WHERE d.level = 'community' AND {prefix_range('d.code')}
          AND EXISTS (SELECT 1 FROM grids g WHERE g.community_code = d.code AND {gscope})
        ORDER BY d.code"""), {**prefix_bounds(prefix), **gparams})}
    codes = list(rows)

    def each(sql: str, params: dict) -> None:
        for r in session.execute(text(sql), {"codes": codes, **params}):
            for key, value in r._mapping.items():
                if key != "code" and r.code in rows:
                    setattr(rows[r.code], key, int(value or 0))

    each(f"""SELECT b.community_code AS code, sum(b.households) AS households
             FROM buildings b WHERE b.community_code = ANY(CAST(:codes AS text[])) AND {bscope}
             GROUP BY b.community_code""", bparams)
    each(f"""SELECT b.community_code AS code, count(*) AS persons
             FROM persons p JOIN households h ON h.id = p.household_id JOIN buildings b ON b.id = h.building_id
             WHERE p.moved_out IS NULL AND b.community_code = ANY(CAST(:codes AS text[])) AND {bscope}
             GROUP BY b.community_code""", bparams)
    each(f"""SELECT g.community_code AS code, sum(n.targeted) AS targeted, sum(n.screened) AS screened
             FROM campaigns c JOIN campaign_grid_counts n ON n.campaign_id = c.id JOIN grids g ON g.id = n.grid_id
             WHERE c.status = 'open' AND g.community_code = ANY(CAST(:codes AS text[])) AND {gscope}
             GROUP BY g.community_code""", gparams)
    each("""SELECT k.community_code AS code, count(*) AS open_cases,
                   count(*) FILTER (WHERE k.deadline < :at) AS overdue_cases
            FROM cases k WHERE k.community_code = ANY(CAST(:codes AS text[]))
              AND k.state <> ALL(CAST(:terminal AS text[]))
            GROUP BY k.community_code""", {"at": at, "terminal": sorted(TERMINAL)})
    enclosures = dict(session.execute(text("""
        SELECT e.id, e.community_code FROM enclosures e
        WHERE e.id = ANY(CAST(:ids AS integer[])) AND e.community_code = ANY(CAST(:codes AS text[]))"""),
        {"ids": op.visible_enclosure_ids(session, who, roles=(*op.MAP_ROLES, *ROLES)), "codes": codes}).all())
    op.ensure_scanned(session, list(enclosures), metric_srid=metric_srid)
    minute = _minute_of_week(at)
    by_community: dict[str, list[op.OpeningView]] = {}
    for o in op.openings_of(session, list(enclosures)):
        by_community.setdefault(enclosures[o.enclosure_id], []).append(o)
    for code, found in by_community.items():
        rows[code].openings = op.opening_counts(found)
        rows[code].staffed_now = sum(1 for o in found if o.status == "checkpoint" and o.checkpoint
                                     and o.checkpoint.staffed and minute in o.checkpoint.schedule)
    zones = risk_zones.zones_per_community(session, codes, at)
    for code, entry in zones.items():
        if code in rows:
            rows[code].risk_severity, rows[code].risk_zones = entry["severity"], entry["zones"]
    communities = list(rows.values())
    total = CommunityFigures(None, head.name)
    if None in zones:
        total.risk_severity, total.risk_zones = zones[None]["severity"], zones[None]["zones"]
    for c in communities:
        for key in ("households", "persons", "targeted", "screened", "open_cases", "overdue_cases", "staffed_now"):
            setattr(total, key, getattr(total, key) + getattr(c, key))
        total.openings = {k: total.openings[k] + v for k, v in c.openings.items()}
    return ScreenFigures(head.code, head.name, at, communities, total)
