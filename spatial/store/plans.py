"""Balanced grid plans in the store: propose grids for a community (or a drawn area), adopt a proposal.

SQL reads the area, buildings, street network and enclosures, transformed to ``metric_srid`` in PostGIS, and
writes an adopted plan; the partition is pure Python (:mod:`spatial.analysis.balance`). Proposals are in
EPSG:4326 (lon, lat) and write nothing.

Adopting (:func:`adopt_plan`) retires every current grid of the community (``retired_at``; history rows by
trigger, with the actor and reason) and inserts the proposal's grids as new grids (version 1). **Codes**: a
retired grid's code stays taken (``grids.code`` is UNIQUE and history refers to it), so new grids are numbered
after the highest number the community has ever used, in reading order of their centroids (west→east within
rows of :data:`GRID_ROW_TOLERANCE_M`, rows north→south) — the grid editor's rule (``spatial.store.grids``);
past 99, Conflict. Buildings go to the new grid holding most of their
footprint and are numbered 1.. in reading order within it (their 19-digit codes change, by trigger);
micro-grids are regenerated per new grid. Grid workers follow their land (:func:`spatial.store.grids.hand_over`):
each goes to the new grid over most of their retired grid.

**Stale plans**: a proposal is made on the community's grids as they are (:func:`plan_basis`, an ETag naming the
code and version of every current grid). Adopting with an older basis than the stored one is refused
(StaleEdit, 412): a grid redrawn after the proposal is never overwritten unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely import Geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.analysis.balance import DEFAULT_RANGE, plan_stats, propose_balanced_plan
from spatial.errors import InvalidInput, NotFound, StaleEdit
from spatial.geometry.codes import division_level, grid_code, reading_order
from spatial.geometry.crs import to_wgs84, transform_geom
from spatial.store.engine import acting_as
from spatial.store.grids import hand_over, new_grid_numbers
from spatial.store.microgrids import regenerate_micro_grids, streets_metric

GRID_ROW_TOLERANCE_M = 50.0
BUILDING_ROW_TOLERANCE_M = 8.0
COVER_TOLERANCE_M2 = 1.0


@dataclass(frozen=True)
class ProposedGrid:
    boundary: Geometry              # EPSG:4326 (lon, lat)
    households: int
    buildings: tuple[int, ...]      # building ids
    area_m2: float


@dataclass(frozen=True)
class PlanProposal:
    """A proposed plan (nothing written). ``stats`` and ``current_stats`` come from
    :func:`spatial.analysis.balance.plan_stats` (households per grid, deviation, share in range, Polsby-Popper)."""

    community_code: str | None
    low: int
    high: int
    grids: tuple[ProposedGrid, ...]
    stats: dict[str, float]
    current_stats: dict[str, float] = field(default_factory=dict)
    excluded: tuple[int, ...] = ()   # buildings with less than half their footprint inside the area

    def feature_collection(self) -> dict[str, Any]:
        """GeoJSON (EPSG:4326) of the proposed grids with their households."""
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": i + 1, "geometry": shapely.geometry.mapping(g.boundary),
             "properties": {"households": g.households, "buildings": len(g.buildings), "area_m2": round(g.area_m2, 1)}}
            for i, g in enumerate(self.grids)]}


@dataclass(frozen=True)
class AdoptReport:
    retired: tuple[int, ...]
    created: tuple[tuple[int, str], ...]    # (grid id, code) in numbering order
    buildings_moved: int                    # buildings whose grid changed
    buildings_unassigned: int               # community buildings lying in no new grid (grid_id cleared)
    micro_grids: int
    assignments: list[dict]                 # grid workers moved with their land: {username, from_grid, to_grid}
    assignments_left_on_retired: int        # grid-worker assignments still pointing at retired grids


def propose_plan(session: Session, community_code: str | None = None, *, area: Geometry | Mapping | None = None,
                 area_crs: str = "EPSG:4326", low: int = DEFAULT_RANGE[0], high: int = DEFAULT_RANGE[1],
                 metric_srid: int = 4547, seed: int = 0, tries: int = 16) -> PlanProposal:
    """Propose balanced grids for a community (its boundary) or for a drawn ``area`` (Shapely or GeoJSON in
    ``area_crs``). Households per building: the stored counts; NULL counts as 0 (run the estimator first).
    Barriers: every street edge and enclosure boundary meeting the area. Writes nothing.
    """
    if (community_code is None) == (area is None):
        raise InvalidInput("give either a community code or an area")
    if not (0 < low <= high):
        raise InvalidInput(f"bad household range {low}–{high}: need 0 < low ≤ high")
    area_wkb = _area_wkb(session, community_code, area, area_crs)
    params = {"area": area_wkb, "srid": metric_srid}
    metric = shapely.from_wkb(bytes(session.execute(
        text("SELECT ST_AsBinary(ST_Transform(ST_GeomFromWKB(:area, 4326), :srid))"), params).scalar_one()))
    rows = session.execute(text("""
        SELECT id, coalesce(households, 0) AS households, ST_AsBinary(ST_Transform(footprint, :srid)) AS wkb
        FROM buildings WHERE ST_Intersects(footprint, ST_GeomFromWKB(:area, 4326)) ORDER BY id"""), params).all()
    footprints = dict(zip([r.id for r in rows], shapely.from_wkb([bytes(r.wkb) for r in rows]))) if rows else {}
    households = {r.id: r.households for r in rows}
    walls = session.execute(text("""
        SELECT ST_AsBinary(ST_Transform(ST_Boundary(boundary), :srid)) FROM enclosures
        WHERE ST_Intersects(boundary, ST_GeomFromWKB(:area, 4326))"""), params).scalars().all()
    barriers = streets_metric(session, container_srid=metric_srid, area_wkb=area_wkb, highways=None) + \
        [shapely.from_wkb(bytes(w)) for w in walls]
    plan = propose_balanced_plan(metric, footprints, households, barriers, low=low, high=high, seed=seed,
                                 tries=tries)
    grids = tuple(ProposedGrid(transform_geom(r.polygon, f"EPSG:{metric_srid}", "EPSG:4326"), r.households,
                               tuple(sorted(r.buildings)), float(r.polygon.area)) for r in plan.regions)
    current = _current_stats(session, community_code, low, high, metric_srid) if community_code else {}
    return PlanProposal(community_code, low, high, grids, plan.stats, current, tuple(plan.excluded))


def plan_basis(session: Session, community_code: str, *, lock: bool = False) -> str:
    """The ETag of a community's current grid plan: ``"<community>.p<12 hex digits>"``, a digest of the code
    and version of every current grid. ``lock=True`` also locks those grid rows until the transaction ends."""
    rows = session.execute(text(
        "SELECT code, version FROM grids WHERE community_code = :c AND retired_at IS NULL ORDER BY code"
        + (" FOR UPDATE" if lock else "")), {"c": community_code}).all()
    digest = hashlib.sha256(";".join(f"{code}:{version}" for code, version in rows).encode()).hexdigest()[:12]
    return f'"{community_code}.p{digest}"'


def plans_basis(session: Session, community_codes: Sequence[str], *, lock: bool = False) -> str:
    """The ETag of the current grid plans of several communities (an import may touch more than one):
    :func:`plan_basis` itself for one, else ``"p<12 hex digits>"``, a digest of each one's basis."""
    bases = [plan_basis(session, code, lock=lock) for code in sorted(set(community_codes))]
    if len(bases) == 1:
        return bases[0]
    return f'"p{hashlib.sha256(";".join(bases).encode()).hexdigest()[:12]}"'


def require_basis(session: Session, community_codes: Sequence[str], basis: str, what: str) -> None:
    """StaleEdit unless ``basis`` (an ETag from :func:`plans_basis`, weak or strong) is still the current plan of
    ``community_codes``; their grid rows stay locked until the transaction ends."""
    current = plans_basis(session, community_codes, lock=True)
    if basis.strip().removeprefix("W/") != current:
        raise StaleEdit(f"the grids of {', '.join(sorted(set(community_codes)))} changed after {what} "
                        f"(made on {basis}, now {current}): check again and review", current=current)


def adopt_plan(session: Session, community_code: str, proposal: PlanProposal, actor: str, reason: str, *,
               metric_srid: int = 4547, micro_grids: bool = True, basis: str | None = None) -> AdoptReport:
    """Write ``proposal`` as the community's new grids (see the module docstring). The caller commits.

    InvalidInput when the proposal is for another area or does not cover the community exactly (within
    :data:`COVER_TOLERANCE_M2`), or when the reason is blank; NotFound for an unknown community; Conflict
    when the new numbers would pass 99; StaleEdit when ``basis`` (from :func:`plan_basis` when the plan was
    proposed) is not the current one. Nothing is written when it raises.
    """
    if not reason or not reason.strip():
        raise InvalidInput("adopting a plan needs a reason", code="grid.reason_needed", field="reason")
    if basis is not None:
        require_basis(session, [community_code], basis, "this plan was proposed")
    if proposal.community_code != community_code:
        raise InvalidInput(f"the proposal was made for {proposal.community_code or 'a drawn area'}, "
                           f"not for community {community_code}")
    if not proposal.grids:
        raise InvalidInput("the proposal has no grid")
    name = _community(session, community_code)[0]
    _check_cover(session, community_code, proposal, metric_srid)
    numbers = new_grid_numbers(session, community_code, len(proposal.grids))
    order = _reading_order(proposal, metric_srid)
    with acting_as(session, actor, reason):
        retired = tuple(session.execute(text("""
            UPDATE grids SET retired_at = now() WHERE community_code = :c AND retired_at IS NULL RETURNING id"""),
            {"c": community_code}).scalars().all())
        created = []
        for number, index in zip(numbers, order):
            code = grid_code(community_code, number)
            gid = session.execute(text("""
                INSERT INTO grids (code, community_code, name, kind, boundary)
                VALUES (:code, :c, :name, 'comprehensive', ST_Multi(ST_GeomFromWKB(:wkb, 4326))) RETURNING id"""),
                {"code": code, "c": community_code, "name": f"{name}第{number}网格",
                 "wkb": _storage_wkb(proposal.grids[index].boundary)}).scalar_one()
            created.append((gid, code))
    moved, unassigned = _reassign_buildings(session, community_code, retired, [g for g, _ in created], metric_srid)
    count = 0
    if micro_grids:
        for gid, _ in created:
            count += regenerate_micro_grids(session, gid, metric_srid=metric_srid).micro_grids
    assignments = hand_over(session, list(retired), actor=actor, reason=reason)
    left = session.execute(text("SELECT count(*) FROM grid_assignments WHERE grid_id = ANY(:ids)"),
                           {"ids": list(retired)}).scalar_one()
    return AdoptReport(retired, tuple(created), moved, unassigned, count, assignments, left)


def current_workload(session: Session, community_code: str, *, metric_srid: int = 4547) -> list[dict[str, Any]]:
    """The current grids of a community with their workload: code, name, boundary (EPSG:4326), buildings,
    households, residents, assigned grid workers (``grid_assignments``) and area (m²), in code order."""
    _community(session, community_code)
    rows = session.execute(text("""
        SELECT g.id, g.code, g.name, ST_AsBinary(g.boundary) AS wkb,
               ST_Area(ST_Transform(g.boundary, :srid)) AS area_m2,
               (SELECT count(*) FROM buildings b WHERE b.grid_id = g.id) AS buildings,
               (SELECT coalesce(sum(b.households), 0) FROM buildings b WHERE b.grid_id = g.id) AS households,
               (SELECT coalesce(sum(b.residents), 0) FROM buildings b WHERE b.grid_id = g.id) AS residents,
               (SELECT count(*) FROM grid_assignments a WHERE a.grid_id = g.id) AS workers
        FROM grids g WHERE g.community_code = :c AND g.retired_at IS NULL ORDER BY g.code"""),
        {"c": community_code, "srid": metric_srid}).all()
    return [{"id": r.id, "code": r.code, "name": r.name, "boundary": shapely.from_wkb(bytes(r.wkb)),
             "area_m2": float(r.area_m2), "buildings": r.buildings, "households": int(r.households),
             "residents": int(r.residents), "workers": r.workers} for r in rows]


# --- helpers -----------------------------------------------------------------------------------------------


def _community(session: Session, code: str) -> tuple[str, bytes | None]:
    try:
        if division_level(code) != "community":
            raise InvalidInput(f"{code} is not a community code")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    row = session.execute(text("SELECT name, ST_AsBinary(boundary) AS wkb FROM divisions WHERE code = :c"),
                          {"c": code}).one_or_none()
    if row is None:
        raise NotFound(f"community {code} does not exist", community_code=code)
    return row.name, (bytes(row.wkb) if row.wkb is not None else None)


def _area_wkb(session: Session, community_code: str | None, area, area_crs: str) -> bytes:
    if community_code is not None:
        wkb = _community(session, community_code)[1]
        if wkb is None:
            raise InvalidInput(f"community {community_code} has no boundary")
        return wkb
    geom = shapely.geometry.shape(area) if isinstance(area, Mapping) else area
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("the area must be a non-empty Polygon or MultiPolygon")
    if not geom.is_valid:
        raise InvalidInput(f"the area is not a valid polygon: {shapely.is_valid_reason(geom)}")
    return shapely.to_wkb(to_wgs84(geom, area_crs), output_dimension=2)


def _current_stats(session: Session, community_code: str, low: int, high: int, metric_srid: int) -> dict:
    rows = session.execute(text("""
        SELECT ST_AsBinary(ST_Transform(g.boundary, :srid)) AS wkb,
               (SELECT coalesce(sum(b.households), 0) FROM buildings b WHERE b.grid_id = g.id) AS households
        FROM grids g WHERE g.community_code = :c AND g.retired_at IS NULL ORDER BY g.code"""),
        {"c": community_code, "srid": metric_srid}).all()
    return plan_stats([shapely.from_wkb(bytes(r.wkb)) for r in rows], [r.households for r in rows], low, high) \
        if rows else {"grids": 0}


def _storage_wkb(geom: Geometry) -> bytes:
    if not geom.is_valid:
        geom = shapely.union_all([p for p in shapely.get_parts(shapely.make_valid(geom))
                                  if p.geom_type in ("Polygon", "MultiPolygon")])
    return shapely.to_wkb(geom, output_dimension=2)


def _check_cover(session: Session, community_code: str, proposal: PlanProposal, metric_srid: int) -> None:
    off = session.execute(text("""
        SELECT ST_Area(ST_Transform(ST_SymDifference(d.boundary,
                   ST_Union(ARRAY(SELECT ST_GeomFromWKB(w, 4326) FROM unnest(CAST(:wkbs AS bytea[])) AS w))), :srid))
        FROM divisions d WHERE d.code = :c"""),
        {"c": community_code, "srid": metric_srid, "wkbs": [_storage_wkb(g.boundary) for g in proposal.grids]}
    ).scalar_one()
    if off is None or off > COVER_TOLERANCE_M2:
        raise InvalidInput(f"the proposal does not cover community {community_code} exactly "
                           f"({off or 0:.1f} m² differ); propose again from the current boundary",
                           code="plan.cover_differs", community=community_code, off_m2=round(off or 0, 1))



def _reading_order(proposal: PlanProposal, metric_srid: int) -> list[int]:
    centroids = [transform_geom(g.boundary, "EPSG:4326", f"EPSG:{metric_srid}").centroid for g in proposal.grids]
    return reading_order([(c.x, c.y) for c in centroids], GRID_ROW_TOLERANCE_M)


def _reassign_buildings(session: Session, community_code: str, retired: tuple[int, ...], new: list[int],
                        metric_srid: int) -> tuple[int, int]:
    """Majority-of-footprint grid and reading-order number for every building of the community (and of its
    retired grids). Returns (buildings whose grid changed, buildings left without a grid)."""
    rows = session.execute(text("""
        WITH members AS (
            SELECT b.id, b.footprint, b.grid_id, b.community_code IS NOT NULL OR b.grid_id IS NOT NULL AS member
            FROM buildings b
            WHERE b.community_code = :c OR b.grid_id = ANY(:old)
               OR (b.community_code IS NULL AND b.grid_id IS NULL
                   AND ST_Intersects(b.footprint, (SELECT boundary FROM divisions WHERE code = :c)))
        ), best AS (
            SELECT DISTINCT ON (m.id) m.id, g.id AS gid,
                   ST_Area(ST_Intersection(m.footprint, g.boundary)) / ST_Area(m.footprint) AS share
            FROM members m JOIN grids g ON g.id = ANY(:new) AND ST_Intersects(m.footprint, g.boundary)
            ORDER BY m.id, ST_Area(ST_Transform(ST_Intersection(m.footprint, g.boundary), :srid)) DESC, g.id
        )
        SELECT m.id, m.grid_id AS old_gid, m.member, best.gid, best.share, ST_X(c) AS x, ST_Y(c) AS y
        FROM members m LEFT JOIN best ON best.id = m.id,
             LATERAL ST_Centroid(ST_Transform(m.footprint, :srid)) AS c
        ORDER BY m.id"""), {"c": community_code, "old": list(retired), "new": new, "srid": metric_srid}).all()
    # buildings not yet in any community join only when a new grid holds most of their footprint
    rows = [r for r in rows if r.member or (r.gid is not None and r.share >= 0.5)]
    by_grid: dict[int, list] = {}
    for r in rows:
        if r.gid is not None:
            by_grid.setdefault(r.gid, []).append(r)
    ids, grids, numbers = [], [], []
    for gid, members in by_grid.items():
        for number, i in enumerate(reading_order([(m.x, m.y) for m in members], BUILDING_ROW_TOLERANCE_M), 1):
            ids.append(members[i].id)
            grids.append(gid)
            numbers.append(number)
    lost = [r.id for r in rows if r.gid is None]
    session.execute(text("""
        UPDATE buildings b SET grid_id = v.gid, number = v.number, micro_grid_id = NULL
        FROM unnest(CAST(:ids AS bigint[]), CAST(:grids AS integer[]), CAST(:numbers AS integer[]))
             AS v (id, gid, number)
        WHERE b.id = v.id"""), {"ids": ids + lost, "grids": grids + [None] * len(lost),
                                 "numbers": numbers + [None] * len(lost)})
    moved = sum(1 for r in rows if r.gid != r.old_gid)
    return moved, len(lost)
