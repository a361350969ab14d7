"""Editing grids: create, redraw, rename, split, merge, retire and revert, with history and no lost update.

Every edit follows one path (:func:`_apply`): lock the community's active grids (``FOR UPDATE``, so two
planners editing neighbours are serialised), compare the versions the caller edited with the stored ones
(:class:`StaleEdit` → 412), load the community into memory, let a pure ``plan_*`` function of
:mod:`spatial.analysis.gridplan` propose the new boundaries (metric CRS), check them, and — unless it is a
preview — write them, reassign the buildings that change grid (new building codes follow by trigger) and
clear their micro-grids. History rows are written by the grids trigger with the actor and reason set by
:func:`spatial.store.engine.acting_as`. Geometries come in and go out as EPSG:4326 (lon, lat). :func:`my_grids`
reads the current grids in a caller's scope (a grid worker's own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from shapely import Geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis import gridplan as gp
from spatial.errors import Conflict, InvalidInput, NotFound, StaleEdit
from spatial.geometry.codes import building_code, grid_code
from spatial.geometry.crs import from_wgs84, transform_geom
from spatial.store import audit
from spatial.store.engine import acting_as
from spatial.store.microgrids import regenerate_micro_grids
from spatial.store.scope import grid_scope
from spatial.store.users import principals_changed


@dataclass(frozen=True)
class PlanSettings:
    """How edits are checked and reported: metric CRS (EPSG code), sliver tolerance (m²), households range
    per grid, and the CRS of geometries in reports (the caller's ``crs``)."""

    metric_srid: int = 4547
    tolerance_m2: float = gp.DEFAULT_TOLERANCE_M2
    households_range: tuple[int, int] = (300, 500)
    output_crs: str = "EPSG:4326"

    def geojson(self, metric_geom: Geometry) -> dict[str, Any]:
        """A metric geometry as a GeoJSON geometry in ``output_crs``."""
        return shapely.geometry.mapping(from_wgs84(to_lonlat(metric_geom, self.metric_srid), self.output_crs))


@dataclass
class EditResult:
    community_code: str
    preview: bool
    report: gp.Report
    grids: list[dict[str, Any]] = field(default_factory=list)
    """Touched grids after the edit: id, code, name, kind, version (None for a preview), retired, geometry
    (metric CRS; use :func:`to_lonlat`)."""
    assignments: list[dict[str, Any]] = field(default_factory=list)
    """Grid workers whose retired grid's land went to another grid, and went with it (:func:`hand_over`)."""


LONLAT_PRECISION = 1e-9
"""Degrees (~0.1 mm): the grid stored boundaries are snapped to after reprojection."""


def to_lonlat(geom: Geometry, metric_srid: int) -> Geometry:
    return transform_geom(geom, metric_srid, 4326)


def to_metric(geom: Geometry, metric_srid: int) -> Geometry:
    """Reprojected and snapped to the 1 mm grid the plan computations use."""
    return shapely.set_precision(transform_geom(geom, 4326, metric_srid), gp.PRECISION_M)


# -- reading ---------------------------------------------------------------------------------------------
def grid_row(session: Session, code: str) -> dict[str, Any]:
    """The active grid with this code (id, code, name, kind, community_code, version, updated_at, boundary
    as a lon/lat geometry); NotFound otherwise."""
    row = session.execute(text(
        "SELECT id, code, name, kind, community_code, version, updated_at, ST_AsBinary(boundary) AS wkb "
        "FROM grids WHERE code = :code AND retired_at IS NULL"), {"code": code}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no active grid with code {code}")
    return {**{k: v for k, v in row.items() if k != "wkb"}, "boundary": shapely.from_wkb(bytes(row["wkb"]))}


def load_community(session: Session, community_code: str, metric_srid: int, *, lock: bool = False) -> gp.Community:
    """The community's boundary, active grids (with worker counts) and buildings, in the metric CRS.
    ``lock`` takes row locks on the active grids for the rest of the transaction."""
    boundary = session.execute(text(
        "SELECT ST_AsBinary(ST_SnapToGrid(ST_Transform(boundary, :srid), :grid)) FROM divisions WHERE code = :c AND level = 'community'"),
        {"c": community_code, "srid": metric_srid, "grid": gp.PRECISION_M}).scalar_one_or_none()
    if boundary is None:
        raise NotFound(f"no community {community_code} with a boundary")
    if lock:
        session.execute(text("SELECT id FROM grids WHERE community_code = :c AND retired_at IS NULL "
                             "ORDER BY id FOR UPDATE"), {"c": community_code})
    grids = {
        r.id: gp.Grid(r.id, r.code, r.name, r.kind, _snapped(bytes(r.wkb)), r.version, r.workers)
        for r in session.execute(text("""
            SELECT g.id, g.code, g.name, g.kind, g.version, ST_AsBinary(ST_SnapToGrid(ST_Transform(g.boundary, :srid), :grid)) AS wkb,
                   (SELECT count(*) FROM grid_assignments a WHERE a.grid_id = g.id) AS workers
            FROM grids g WHERE g.community_code = :c AND g.retired_at IS NULL ORDER BY g.code"""),
            {"c": community_code, "srid": metric_srid, "grid": gp.PRECISION_M})
    }
    rows = session.execute(text("""
        SELECT b.id, coalesce(b.grid_id, 0) AS grid_id, b.code, coalesce(b.households, 0) AS households,
               coalesce(b.residents, 0) AS residents, ST_AsBinary(ST_SnapToGrid(ST_Transform(b.footprint, :srid), :grid)) AS wkb
        FROM buildings b
        WHERE b.community_code = :c OR b.grid_id = ANY(ARRAY(SELECT id FROM grids WHERE community_code = :c))
           OR (b.community_code IS NULL AND b.footprint && (SELECT boundary FROM divisions WHERE code = :c))
        ORDER BY b.id"""), {"c": community_code, "srid": metric_srid, "grid": gp.PRECISION_M}).all()
    # ``= ANY(ARRAY(…))``, not ``IN (SELECT …)``: an IN subquery inside the OR made PostgreSQL scan every building
    # of the city (a grid preview 148 ms at 1,000,000 households, 1.2 s at 7,000,000: benchmarks.growth); the
    # array lets the three conditions be one BitmapOr of indexes.
    buildings = gp.Buildings(
        ids=np.array([r.id for r in rows], dtype=np.int64),
        footprints=np.array(_snapped([bytes(r.wkb) for r in rows]) if rows else [], dtype=object),
        grid_ids=np.array([r.grid_id for r in rows], dtype=np.int64),
        codes=[r.code for r in rows],
        households=np.array([r.households for r in rows], dtype=np.int64),
        residents=np.array([r.residents for r in rows], dtype=np.int64),
    )
    return gp.Community(community_code, _snapped(bytes(boundary)), grids, buildings)


def _snapped(wkb):
    """Metric geometries from WKB (already snapped to the plan's precision grid by ST_SnapToGrid in SQL,
    which is much faster than doing it here); works on lists too."""
    return shapely.from_wkb(wkb)


def versions(session: Session, code: str, metric_srid: int = 4547) -> list[dict[str, Any]]:
    """Every version of the grid that has (or had) this code, oldest first, with author, reason and area."""
    rows = session.execute(text("""
        SELECT v.grid_id, v.version, v.code, v.name, v.kind, v.retired, v.valid_from, v.valid_to, v.author,
               v.reason, round(ST_Area(ST_Transform(v.boundary, :srid))::numeric, 1) AS area_m2
        FROM grid_versions v WHERE v.grid_id IN (SELECT grid_id FROM grid_versions WHERE code = :code)
        ORDER BY v.version"""), {"code": code, "srid": metric_srid}).mappings().all()
    if not rows:
        raise NotFound(f"no grid with code {code} in the history")
    return [dict(r) for r in rows]


def version_diff(session: Session, code: str, a: int, b: int, metric_srid: int) -> dict[str, Any]:
    """What changed from version ``a`` to ``b`` of a grid: attributes, land added and removed (metric
    geometries and m²), and the buildings standing on the added or removed land."""
    rows = session.execute(text("""
        SELECT v.version, v.code, v.name, v.kind, v.retired, v.author, v.reason, v.valid_from,
               ST_AsBinary(ST_Transform(v.boundary, :srid)) AS wkb
        FROM grid_versions v WHERE v.version IN (:a, :b)
          AND v.grid_id = (SELECT grid_id FROM grid_versions WHERE code = :code ORDER BY version DESC LIMIT 1)"""),
        {"code": code, "a": a, "b": b, "srid": metric_srid}).mappings().all()
    by_version = {r["version"]: r for r in rows}
    missing = [v for v in (a, b) if v not in by_version]
    if missing:
        raise NotFound(f"grid {code} has no version {', '.join(map(str, missing))}")
    old, new = (shapely.from_wkb(bytes(by_version[v]["wkb"])) for v in (a, b))
    added, removed = shapely.difference(new, old), shapely.difference(old, new)
    changed = {k: [by_version[a][k], by_version[b][k]] for k in ("code", "name", "kind", "retired")
               if by_version[a][k] != by_version[b][k]}
    return {"code": code, "from_version": a, "to_version": b, "attributes": changed,
            "added": added, "added_m2": round(added.area, 1), "removed": removed, "removed_m2": round(removed.area, 1),
            "buildings_added": _buildings_on(session, added, metric_srid),
            "buildings_removed": _buildings_on(session, removed, metric_srid)}


def _buildings_on(session: Session, land: Geometry, metric_srid: int) -> list[str]:
    if land.is_empty or land.area < 1:
        return []
    return list(session.execute(text("""
        SELECT coalesce(code, '#' || id) FROM buildings
        WHERE ST_Intersects(footprint, ST_Transform(ST_GeomFromWKB(:wkb, :srid), 4326))
          AND ST_Area(ST_Intersection(ST_Transform(footprint, :srid), ST_GeomFromWKB(:wkb, :srid)))
              > 0.5 * ST_Area(ST_Transform(footprint, :srid))
        ORDER BY 1"""), {"wkb": shapely.to_wkb(land), "srid": metric_srid}).scalars())


# -- editing ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewGrid:
    name: str
    kind: str = "comprehensive"


def _apply(session: Session, community_code: str, build: Callable[[gp.Community], gp.Plan], *,
           expected: dict[str, int], actor: str, reason: str, preview: bool, settings: PlanSettings,
           new_grids: dict[int, NewGrid] | None = None, renames: dict[int, str] | None = None) -> EditResult:
    """The one path of every edit; see the module docstring. ``expected`` maps grid codes to the versions
    the caller edited; ``new_grids`` names the negative ids the plan may create."""
    if not reason.strip() and not preview:
        raise InvalidInput("say why: every change to a grid is recorded with a reason", code="grid.reason_needed",
                           field="reason")
    community = load_community(session, community_code, settings.metric_srid, lock=not preview)
    _check_versions(community, expected)
    plan = build(community)
    codes = {gid: g.code for gid, g in community.grids.items()}
    codes.update(_new_codes(session, community_code, new_grids or {}))
    report = gp.check_plan(community, plan, codes, tolerance_m2=settings.tolerance_m2,
                           households_range=settings.households_range)
    _predict_codes(session, report)
    result = EditResult(community_code, preview, report)
    if not preview and not report.ok:
        problems = report.problems()
        raise Conflict("the change was not saved: " + "; ".join(problems), code="plan.not_saved",
                       count=len(problems), report=report.to_dict(settings.geojson))
    if preview:
        result.grids = [_touched(community, gid, geom, codes, new_grids, None) for gid, geom in plan.items()]
        return result
    with acting_as(session, actor, reason):
        ids = _write(session, community, plan, codes, new_grids or {}, renames or {}, settings.metric_srid)
        _reassign_buildings(session, community, report, ids, plan, settings.metric_srid)
    result.assignments = hand_over(session, [gid for gid, geom in plan.items() if geom is None], actor=actor,
                                   reason=reason)
    result.grids = [_touched(community, gid, geom, codes, new_grids, _version(session, ids[gid]), ids[gid])
                    for gid, geom in plan.items()]
    return result


@dataclass(frozen=True)
class Replacement:
    """A community as it would be with some grids replaced or added (:func:`check_replacement`): the plan
    (plan id → metric boundary; negative ids are grids not stored yet), the code of every plan id, the report."""

    community: gp.Community
    plan: gp.Plan
    codes: dict[int, str]
    report: gp.Report

    def plan_id(self, code: str) -> int:
        return next(gid for gid, c in self.codes.items() if c == code)


def check_replacement(session: Session, community_code: str, boundaries: dict[str, Geometry], *,
                      metric_srid: int, tolerance_m2: float = gp.DEFAULT_TOLERANCE_M2) -> Replacement:
    """The community with the grids named in ``boundaries`` (grid code → lon/lat boundary; a code not among
    its active grids is a new grid) taking those boundaries, checked as an edit is (:func:`gridplan.check_plan`:
    gaps, overlaps, land outside the community, cut and moved buildings, workload). Nothing is locked or
    written (grid imports check files with it). NotFound when the community has no boundary."""
    community = load_community(session, community_code, metric_srid)
    codes = {gid: g.code for gid, g in community.grids.items()}
    stored = {code: gid for gid, code in codes.items()}
    plan: gp.Plan = {}
    for n, (code, boundary) in enumerate(boundaries.items(), start=1):
        gid = stored.get(code, -n)
        plan[gid] = to_metric(boundary, metric_srid)
        codes[gid] = code
    report = gp.check_plan(community, plan, codes, tolerance_m2=tolerance_m2)
    return Replacement(community, plan, codes, report)


_HAND_OVER = """
WITH heirs AS (
    SELECT DISTINCT ON (r.id) r.id AS retired, r.code AS retired_code, g.id AS heir, g.code AS heir_code
    FROM grids r
    JOIN grids g ON g.community_code = r.community_code AND g.retired_at IS NULL AND g.boundary && r.boundary
                AND ST_Area(ST_Intersection(g.boundary, r.boundary)) > 0
    WHERE r.id = ANY(CAST(:retired AS integer[]))
    ORDER BY r.id, ST_Area(ST_Intersection(g.boundary, r.boundary)) DESC, g.code),
moved AS (
    DELETE FROM grid_assignments a USING heirs h WHERE a.grid_id = h.retired
    RETURNING a.user_id, a.duty, h.retired_code, h.heir, h.heir_code),
added AS (
    INSERT INTO grid_assignments (user_id, grid_id, duty) SELECT DISTINCT ON (user_id, heir) user_id, heir, duty
    FROM moved ON CONFLICT DO NOTHING)
SELECT u.username, m.retired_code AS from_grid, m.heir_code AS to_grid
FROM moved m JOIN users u ON u.id = m.user_id ORDER BY m.retired_code, u.username"""


def hand_over(session: Session, retired: list[int], *, actor: str, reason: str) -> list[dict[str, Any]]:
    """Grid workers assigned to the ``retired`` grids follow their land: each assignment moves to the active
    grid of the community that now holds most of the retired grid's area (a merge: the merged grid; an adopted
    plan: the new grid over most of the old one). A grid whose land no grid took (retired to a gap) keeps its
    assignments, and :func:`spatial.store.checks` lists them. Returns [{username, from_grid, to_grid}].

    A worker's access to household data follows the assignment, so each move is audited (``assign``, by
    ``actor``, with the edit's ``reason``), and every server process forgets the callers it remembers."""
    if not retired:
        return []
    moved = [dict(r._mapping) for r in session.execute(text(_HAND_OVER), {"retired": retired})]
    for m in moved:
        audit.record(session, None, "assign", actor=actor, object_type="user", object_id=m["username"],
                     purpose=reason, result=f"grid {m['from_grid']} → {m['to_grid']} (followed its land)")
    if moved:
        principals_changed(session)  # their phones see the new grid at once, not when the caller cache expires
    return moved


def _predict_codes(session: Session, report: gp.Report) -> None:
    """The building codes moved buildings will get: their new grid's code + the next free numbers, in
    building id order (the same rule :func:`_reassign_buildings` applies when writing)."""
    targets = sorted({m.to_grid for m in report.moved_buildings if m.to_grid})
    highest = dict(session.execute(text(
        "SELECT g.code, coalesce(max(b.number), 0) FROM grids g LEFT JOIN buildings b ON b.grid_id = g.id "
        "WHERE g.code = ANY(:codes) GROUP BY g.code"), {"codes": targets}).all()) if targets else {}
    for moved in sorted(report.moved_buildings, key=lambda m: m.id):
        if moved.to_grid:
            highest[moved.to_grid] = highest.get(moved.to_grid, 0) + 1
            moved.new_code = building_code(moved.to_grid, highest[moved.to_grid])


def _check_versions(community: gp.Community, expected: dict[str, int]) -> None:
    stored = {g.code: g.version for g in community.grids.values()}
    for code, version in expected.items():
        if code not in stored:
            raise NotFound(f"no active grid {code} in community {community.code}", code="grid.not_in_community",
                           grid=code, community=community.code)
        if stored[code] != version:
            raise StaleEdit(f"grid {code} is at version {stored[code]} but your change was made on version "
                            f"{version}: reload the grid and redo the change", grid=code,
                            current_version=stored[code], your_version=version)


def new_grid_numbers(session: Session, community_code: str, count: int) -> list[int]:
    """Grid numbers (the code's last two digits) for ``count`` new grids of a community: the next ones after the
    highest ever used there (retired grids keep their codes, so a code always means one grid); Conflict past 99.
    The rule of the editor and of adopted plans (:mod:`spatial.store.plans`)."""
    highest = session.execute(text("SELECT coalesce(max(substr(code, 13)::int), 0) FROM grids "
                                   "WHERE community_code = :c"), {"c": community_code}).scalar_one()
    if highest + count > 99:
        raise Conflict(f"community {community_code} has used grid numbers up to {highest}; {count} new grids "
                       "would pass 99 (codes of retired grids stay taken)", code="grid.numbers_exhausted",
                       community=community_code, highest=highest, needed=count)
    return list(range(highest + 1, highest + count + 1))


def _new_codes(session: Session, community_code: str, new_grids: dict[int, NewGrid]) -> dict[int, str]:
    """Codes for the new grids of an edit (:func:`new_grid_numbers`), the most negative id first."""
    if not new_grids:
        return {}
    numbers = new_grid_numbers(session, community_code, len(new_grids))
    return {gid: grid_code(community_code, n) for gid, n in zip(sorted(new_grids, reverse=True), numbers, strict=True)}


def _write(session: Session, community: gp.Community, plan: gp.Plan, codes: dict[int, str],
           new_grids: dict[int, NewGrid], renames: dict[int, str], metric_srid: int) -> dict[int, int]:
    """Store the plan; returns plan id → stored grid id (new grids get theirs here)."""
    ids = {gid: gid for gid in community.grids}
    for gid, geom in plan.items():
        wkb = None if geom is None else shapely.to_wkb(gp.clean(to_lonlat(geom, metric_srid), LONLAT_PRECISION))
        if gid in community.grids and geom is None:
            session.execute(text("UPDATE grids SET retired_at = now() WHERE id = :id"), {"id": gid})
        elif gid in community.grids:
            session.execute(text("UPDATE grids SET boundary = ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326)), "
                                 "name = coalesce(:name, name) WHERE id = :id"),
                            {"id": gid, "wkb": wkb, "name": renames.get(gid)})
        else:
            spec = new_grids[gid]
            ids[gid] = session.execute(text(
                "INSERT INTO grids (code, community_code, name, kind, boundary) VALUES "
                "(:code, :c, :name, :kind, ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326))) RETURNING id"),
                {"code": codes[gid], "c": community.code, "name": spec.name, "kind": spec.kind, "wkb": wkb}).scalar_one()
    return ids


def _reassign_buildings(session: Session, community: gp.Community, report: gp.Report, ids: dict[int, int],
                        plan: gp.Plan, metric_srid: int) -> None:
    """The buildings and micro-grids of an edit's plan (see :func:`_move_buildings`)."""
    building_grid = {b: ids[g] if g else 0 for b, g in report.building_grid.items()}
    _move_buildings(session, community, building_grid,
                    retired=[gid for gid, geom in plan.items() if geom is None],
                    changed=sorted({ids[gid] for gid, geom in plan.items() if geom is not None}),
                    metric_srid=metric_srid)


def _move_buildings(session: Session, community: gp.Community, building_grid: dict[int, int], *,
                    retired: list[int], changed: list[int], metric_srid: int) -> int:
    """Buildings that change grid (``building_grid``: building id → stored grid id, 0 for none) get the next
    free numbers of their new grid (codes follow by trigger) and leave their micro-grid; ``changed`` grids
    that had micro-grids get them regenerated, keeping unchanged groups; ``retired`` grids' micro-grids are
    dropped. Returns the number of buildings moved."""
    current = dict(zip(community.buildings.ids.tolist(), community.buildings.grid_ids.tolist(), strict=True))
    moves = [(b, g or None) for b, g in building_grid.items() if g != current[b]]
    if moves:
        session.execute(text("UPDATE buildings SET micro_grid_id = NULL, grid_id = NULL, number = NULL "
                             "WHERE id = ANY(:ids)"), {"ids": [b for b, _ in moves]})
        session.execute(text("""
            UPDATE buildings b SET grid_id = m.grid_id,
                   number = (SELECT coalesce(max(number), 0) FROM buildings WHERE grid_id = m.grid_id) + m.rank
            FROM (SELECT id, grid_id, row_number() OVER (PARTITION BY grid_id ORDER BY id) AS rank
                  FROM unnest(CAST(:ids AS bigint[]), CAST(:grids AS int[])) AS t(id, grid_id)
                  WHERE grid_id IS NOT NULL) m
            WHERE b.id = m.id"""), {"ids": [b for b, _ in moves], "grids": [g for _, g in moves]})
    session.execute(text("DELETE FROM micro_grids WHERE grid_id = ANY(:g)"), {"g": retired})
    with_micro = session.execute(text("SELECT DISTINCT grid_id FROM micro_grids WHERE grid_id = ANY(:g)"),
                                 {"g": changed}).scalars().all()
    for grid_id in with_micro:
        regenerate_micro_grids(session, grid_id, metric_srid=metric_srid)
    return len(moves)


def settle_buildings(session: Session, community_code: str, changed_codes: list[str], *,
                     metric_srid: int = 4547, tolerance_m2: float = gp.DEFAULT_TOLERANCE_M2) -> int:
    """After grids were written outside an edit (a grid import): every building of the community goes to the
    grid holding most of its footprint (none if no grid holds it), numbered and with micro-grids as an edit
    would leave them (:func:`_move_buildings`; ``changed_codes`` are the grids written). Returns buildings moved."""
    community = load_community(session, community_code, metric_srid)
    grids = {gid: g.geom for gid, g in community.grids.items()}
    best, _, _ = gp.assign_buildings(community.buildings.footprints, grids, tolerance_m2,
                                     current=community.buildings.grid_ids)
    written = set(changed_codes)
    changed = sorted(gid for gid, g in community.grids.items() if g.code in written)
    return _move_buildings(session, community, dict(zip(community.buildings.ids.tolist(), best.tolist(), strict=True)),
                           retired=[], changed=changed, metric_srid=metric_srid)


def _version(session: Session, grid_id: int) -> int:
    return session.execute(text("SELECT version FROM grids WHERE id = :id"), {"id": grid_id}).scalar_one()


def _touched(community: gp.Community, gid: int, geom: Geometry | None, codes: dict[int, str],
             new_grids: dict[int, NewGrid] | None, version: int | None, stored_id: int | None = None
             ) -> dict[str, Any]:
    """A touched grid for the result; ``gid`` is the plan's id (negative for new), ``stored_id`` the row's."""
    old = community.grids.get(gid)
    spec = (new_grids or {}).get(gid)
    return {"id": stored_id if stored_id is not None else (gid if gid > 0 else None), "code": codes[gid],
            "name": old.name if old else spec.name, "kind": old.kind if old else spec.kind,
            "version": version, "retired": geom is None, "geometry": geom if geom is not None else old.geom}


# -- the operations ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Edit:
    """Who edits, why, which versions they edited (grid code → version; grids not named are not checked,
    which only a preview may rely on), whether it is a preview, and the plan settings."""

    actor: str
    reason: str
    expected: dict[str, int] = field(default_factory=dict)
    preview: bool = False
    settings: PlanSettings = PlanSettings()


def _run(session: Session, community_code: str, build: Callable[[gp.Community], gp.Plan], edit: Edit,
         **extra: Any) -> EditResult:
    return _apply(session, community_code, build, expected=edit.expected, actor=edit.actor, reason=edit.reason,
                  preview=edit.preview, settings=edit.settings, **extra)


def create_grid(session: Session, community_code: str, name: str, kind: str, boundary: Geometry, edit: Edit, *,
                move_shared_boundary: bool = False) -> EditResult:
    """A new grid from a lon/lat boundary; its code is the community's next free number."""
    metric = to_metric(boundary, edit.settings.metric_srid)
    return _run(session, community_code, lambda c: gp.plan_redraw(c, -1, metric, move_shared_boundary=move_shared_boundary),
                edit, new_grids={-1: NewGrid(name, kind)})


def redraw_grid(session: Session, code: str, boundary: Geometry, edit: Edit, *,
                move_shared_boundary: bool = False) -> EditResult:
    """Replace a grid's boundary (lon/lat), snapped around buildings; see :func:`gridplan.plan_redraw`."""
    grid = grid_row(session, code)
    metric = to_metric(boundary, edit.settings.metric_srid)
    return _run(session, grid["community_code"],
                lambda c: gp.plan_redraw(c, grid["id"], metric, move_shared_boundary=move_shared_boundary), edit)


def rename_grid(session: Session, code: str, name: str, edit: Edit) -> EditResult:
    if not name.strip():
        raise InvalidInput("a grid needs a name", code="grid.name_needed", field="name")
    grid = grid_row(session, code)
    return _run(session, grid["community_code"], lambda c: {grid["id"]: c.grids[grid["id"]].geom}, edit,
                renames={grid["id"]: name.strip()})


def split_grid(session: Session, code: str, line: Geometry, new_name: str, edit: Edit) -> EditResult:
    """Cut a grid in two along a lon/lat line; the smaller side becomes a new grid named ``new_name``."""
    grid = grid_row(session, code)
    metric = to_metric(line, edit.settings.metric_srid)
    return _run(session, grid["community_code"], lambda c: gp.plan_split(c, grid["id"], metric), edit,
                new_grids={-1: NewGrid(new_name, grid["kind"])})


def merge_grids(session: Session, codes: list[str], edit: Edit) -> EditResult:
    """Merge adjacent grids of one community into the first; the others retire."""
    grids = [grid_row(session, code) for code in codes]
    communities = {g["community_code"] for g in grids}
    if len(communities) != 1:
        raise InvalidInput("only grids of the same community can be merged", code="merge.other_community",
                           communities=", ".join(sorted(communities)))
    return _run(session, communities.pop(), lambda c: gp.plan_merge(c, [g["id"] for g in grids]), edit)


def retire_grid(session: Session, code: str, edit: Edit) -> EditResult:
    """Retire a grid: its land becomes a gap (reported) and its buildings lose their grid."""
    grid = grid_row(session, code)
    return _run(session, grid["community_code"], lambda c: gp.plan_retire(c, grid["id"]), edit)


def revert_grid(session: Session, code: str, to_version: int, edit: Edit, *,
                move_shared_boundary: bool = False) -> EditResult:
    """Bring back the boundary and name of an earlier version, as a new version."""
    grid = grid_row(session, code)
    old = session.execute(text("SELECT name, ST_AsBinary(boundary) AS wkb FROM grid_versions "
                               "WHERE grid_id = :id AND version = :v"), {"id": grid["id"], "v": to_version}).one_or_none()
    if old is None:
        raise NotFound(f"grid {code} has no version {to_version}")
    metric = to_metric(shapely.from_wkb(bytes(old.wkb)), edit.settings.metric_srid)
    return _run(session, grid["community_code"],
                lambda c: gp.plan_redraw(c, grid["id"], metric, move_shared_boundary=move_shared_boundary), edit,
                renames={grid["id"]: old.name})


# -- the grids in a caller's scope --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridView:
    id: int
    code: str
    name: str
    boundary: Any  # shapely MultiPolygon, EPSG:4326
    households: int = 0  # the grid's workload figure, as on the grids layer: the sum of its buildings' households


def my_grids(session: Session, who: Principal, limit: int = 1000) -> list[GridView]:
    """The current grids in the caller's scope (a grid worker's assigned grids), by code, at most ``limit``, with
    their households (a count, no personal data: the figure the grids layer shows everyone who sees the grid)."""
    scope, params = grid_scope(who.area)
    rows = session.execute(text(f"""
        SELECT g.id, g.code, g.name, ST_AsBinary(g.boundary) AS wkb,
               (SELECT coalesce(sum(b.households), 0) FROM buildings b WHERE b.grid_id = g.id) AS households
        FROM grids g WHERE g.retired_at IS NULL AND {scope} ORDER BY g.code LIMIT :limit"""),
                           {**params, "limit": limit}).all()
    return [GridView(r.id, r.code, r.name, shapely.from_wkb(bytes(r.wkb)), int(r.households)) for r in rows]
