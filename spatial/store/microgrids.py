"""Micro-grids (微网格) in the store: regenerate those of a grid from its buildings and the street network.

SQL only reads the grid, its buildings and nearby streets (transformed to ``metric_srid`` in PostGIS, so
Python receives metres) and writes the result; the grouping itself is pure Python
(:func:`spatial.analysis.microgrids.plan_micro_grids`), because it is a graph optimisation, not a query.
Written geometries are EPSG:4326 (lon, lat), converted from metres with pyproj.

Membership is ``buildings.grid_id`` (the grid holding most of each footprint, kept so by the grid editor).
Micro-grids are numbered ``seq`` = 1.. in reading order (west→east within rows, rows north→south,
:func:`spatial.geometry.codes.reading_order` on centroids, rows :data:`ROW_TOLERANCE_M` high). A group kept
from before (same buildings, still contiguous, 4–6 buildings) keeps its row: id, name and building head; only
its polygon and seq may change. The caller owns the transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import shapely
from shapely import Geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.analysis.microgrids import HIGH, LOW, TARGET, MicroGridPlan, plan_micro_grids
from spatial.errors import InvalidInput, NotFound
from spatial.geometry.codes import reading_order
from spatial.geometry.crs import transform_geom

ROW_TOLERANCE_M = 15.0
MAX_MICRO_GRIDS = 333        # seq is 1–999 and renumbering passes through spare values (see _renumber)

# OSM highway values that separate micro-grids (footways, service roads and paths inside estates do not)
STREET_HIGHWAYS = ("motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
                   "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street")


@dataclass(frozen=True)
class MicroGridReport:
    """What :func:`regenerate_micro_grids` did. Areas in m² (``metric_srid``)."""

    grid_id: int
    buildings: int
    micro_grids: int
    kept: int
    created: int
    removed: int
    sizes: dict[int, int] = field(default_factory=dict)      # size → number of micro-grids
    exact_five_share: float = 0.0
    valid_size_share: float = 0.0                          # share with 4–6 buildings
    crossing_street: int = 0
    not_contiguous: int = 0
    outside: tuple[int, ...] = ()                          # building ids with no footprint inside the grid
    gap_m2: float = 0.0
    overlap_m2: float = 0.0


def regenerate_micro_grids(session: Session, grid_id: int, *, metric_srid: int = 4547, tries: int = 16,
                           seed: int = 0) -> MicroGridReport:
    """Regroup the buildings of grid ``grid_id`` into micro-grids of five (see :mod:`spatial.analysis.microgrids`)
    and write ``micro_grids`` rows and ``buildings.micro_grid_id``, keeping unchanged groups.

    NotFound for an unknown grid; InvalidInput for a retired grid. A grid without buildings ends with no
    micro-grid. Buildings lying wholly outside the grid's boundary get no micro-grid (listed in ``outside``).
    """
    container = _grid_metric(session, grid_id, metric_srid)
    footprints, previous = _buildings_metric(session, grid_id, metric_srid)
    streets = streets_metric(session, container_srid=metric_srid, bounds_of_grid=grid_id)
    plan = plan_micro_grids(container, footprints, streets, previous=previous, tries=tries, seed=seed)
    if len(plan.groups) > MAX_MICRO_GRIDS:
        raise InvalidInput(f"grid {grid_id} would have {len(plan.groups)} micro-grids; at most "
                           f"{MAX_MICRO_GRIDS} are supported")
    order = reading_order([(p.x, p.y) for p in shapely.centroid([g.polygon for g in plan.groups])],
                          ROW_TOLERANCE_M) if plan.groups else []
    ids = _write(session, grid_id, plan, order, metric_srid)
    removed = len({gid for gid in previous} - {g.kept for g in plan.groups if g.kept is not None})
    return _report(grid_id, container, plan, len(footprints), removed, ids)


def streets_metric(session: Session, *, container_srid: int, bounds_of_grid: int | None = None,
                   area_wkb: bytes | None = None, highways: tuple[str, ...] | None = STREET_HIGHWAYS
                   ) -> list[Geometry]:
    """Street centrelines (metres, ``container_srid``) meeting a grid's boundary or an EPSG:4326 area (WKB);
    only ``highways`` classes (None: all edges)."""
    where = "ST_Intersects(e.geom, (SELECT boundary FROM grids WHERE id = :gid))" if bounds_of_grid is not None \
        else "ST_Intersects(e.geom, ST_GeomFromWKB(:area, 4326))"
    if highways is not None:
        where += " AND e.highway = ANY(:highways)"
    rows = session.execute(text(f"SELECT ST_AsBinary(ST_Transform(e.geom, :srid)) FROM street_edges e WHERE {where}"),
                           {"gid": bounds_of_grid, "area": area_wkb, "srid": container_srid,
                            "highways": list(highways or ())}).scalars().all()
    return list(shapely.from_wkb([bytes(r) for r in rows])) if rows else []


def to_storage(geom: Geometry, metric_srid: int) -> bytes:
    """A metric (Multi)Polygon as EPSG:4326 WKB, repaired if the transformation made it invalid."""
    lonlat = transform_geom(geom, f"EPSG:{metric_srid}", "EPSG:4326")
    if not lonlat.is_valid:
        parts = [p for p in shapely.get_parts(shapely.make_valid(lonlat)) if p.geom_type in ("Polygon", "MultiPolygon")]
        lonlat = shapely.union_all(parts)
    return shapely.to_wkb(lonlat, output_dimension=2)


def _grid_metric(session: Session, grid_id: int, metric_srid: int) -> Geometry:
    row = session.execute(text("""
        SELECT ST_AsBinary(ST_Transform(boundary, :srid)) AS wkb, retired_at FROM grids WHERE id = :id FOR UPDATE"""),
        {"id": grid_id, "srid": metric_srid}).one_or_none()
    if row is None:
        raise NotFound(f"grid {grid_id} does not exist", grid_id=grid_id)
    if row.retired_at is not None:
        raise InvalidInput(f"grid {grid_id} is retired; micro-grids belong to current grids", grid_id=grid_id)
    return shapely.from_wkb(bytes(row.wkb))


def _buildings_metric(session: Session, grid_id: int, metric_srid: int):
    rows = session.execute(text("""
        SELECT id, ST_AsBinary(ST_Transform(footprint, :srid)) AS wkb, micro_grid_id
        FROM buildings WHERE grid_id = :id ORDER BY id"""), {"id": grid_id, "srid": metric_srid}).all()
    footprints = dict(zip([r.id for r in rows], shapely.from_wkb([bytes(r.wkb) for r in rows]))) if rows else {}
    previous: dict[int, list[int]] = {}
    for r in rows:
        if r.micro_grid_id is not None:
            previous.setdefault(r.micro_grid_id, []).append(r.id)
    for mg in session.execute(text("SELECT id FROM micro_grids WHERE grid_id = :id"), {"id": grid_id}).scalars():
        previous.setdefault(mg, [])
    return footprints, previous


def _write(session: Session, grid_id: int, plan: MicroGridPlan, order: list[int], metric_srid: int) -> list[int]:
    """Write the plan; returns the micro-grid id of each group (plan order)."""
    seq = {group: number for number, group in enumerate(order, start=1)}
    kept = [g.kept for g in plan.groups if g.kept is not None]
    session.execute(text("UPDATE buildings SET micro_grid_id = NULL WHERE grid_id = :id AND micro_grid_id IS NOT NULL"),
                    {"id": grid_id})
    session.execute(text("DELETE FROM micro_grids WHERE grid_id = :id AND NOT (id = ANY(:kept))"),
                    {"id": grid_id, "kept": kept})
    ids: list[int] = [0] * len(plan.groups)
    kept_rows = [(i, g) for i, g in enumerate(plan.groups) if g.kept is not None]
    _renumber(session, grid_id, [(g.kept, seq[i]) for i, g in kept_rows], len(plan.groups))
    for i, g in kept_rows:
        session.execute(text("UPDATE micro_grids SET boundary = ST_Multi(ST_GeomFromWKB(:wkb, 4326)) WHERE id = :id"),
                        {"id": g.kept, "wkb": to_storage(g.polygon, metric_srid)})
        ids[i] = g.kept
    for i, g in enumerate(plan.groups):
        if g.kept is None:
            ids[i] = session.execute(text("""
                INSERT INTO micro_grids (grid_id, seq, boundary)
                VALUES (:grid, :seq, ST_Multi(ST_GeomFromWKB(:wkb, 4326))) RETURNING id"""),
                {"grid": grid_id, "seq": seq[i], "wkb": to_storage(g.polygon, metric_srid)}).scalar_one()
    buildings = [b for g in plan.groups for b in g.buildings]
    micro = [ids[i] for i, g in enumerate(plan.groups) for _ in g.buildings]
    session.execute(text("""
        UPDATE buildings b SET micro_grid_id = v.mg
        FROM unnest(CAST(:b AS bigint[]), CAST(:m AS integer[])) AS v (id, mg) WHERE b.id = v.id"""),
        {"b": buildings, "m": micro})
    return ids


def _renumber(session: Session, grid_id: int, targets: list[tuple[int, int]], total: int) -> None:
    """Give kept rows their new seq without breaking UNIQUE (grid_id, seq) midway: first spare values that
    neither the old nor the new numbering uses, then the final ones."""
    if not targets:
        return
    used = set(session.execute(text("SELECT seq FROM micro_grids WHERE grid_id = :id"), {"id": grid_id}).scalars())
    spare = [s for s in range(999, 0, -1) if s not in used and s > total][:len(targets)]
    if len(spare) < len(targets):
        raise InvalidInput(f"grid {grid_id} has too many micro-grids to renumber")
    for values in ([(mg, s) for (mg, _), s in zip(targets, spare)], targets):
        session.execute(text("""
            UPDATE micro_grids m SET seq = v.seq
            FROM unnest(CAST(:ids AS integer[]), CAST(:seqs AS integer[])) AS v (id, seq) WHERE m.id = v.id"""),
            {"ids": [mg for mg, _ in values], "seqs": [s for _, s in values]})


def _report(grid_id, container, plan: MicroGridPlan, buildings: int, removed: int, ids) -> MicroGridReport:
    sizes = plan.sizes()
    polygons = [g.polygon for g in plan.groups]
    gap = overlap = 0.0
    if polygons:
        union = shapely.union_all(polygons)
        gap = shapely.difference(container, union).area + shapely.difference(union, container).area
        overlap = max(0.0, sum(p.area for p in polygons) - union.area)
    count = len(sizes) or 1
    return MicroGridReport(
        grid_id=grid_id, buildings=buildings, micro_grids=len(sizes),
        kept=sum(g.kept is not None for g in plan.groups), created=sum(g.kept is None for g in plan.groups),
        removed=removed, sizes=dict(sorted(Counter(sizes).items())),
        exact_five_share=sum(s == TARGET for s in sizes) / count,
        valid_size_share=sum(LOW <= s <= HIGH for s in sizes) / count,
        crossing_street=sum(g.crosses_street for g in plan.groups),
        not_contiguous=sum(g.jumps for g in plan.groups), outside=tuple(plan.outside),
        gap_m2=float(gap), overlap_m2=float(overlap))
