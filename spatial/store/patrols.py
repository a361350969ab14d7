"""Queries behind patrol routes: where the chosen stops are, and the lanes of a grid with the streets around it.

* :func:`stops` — checkpoints, openings and buildings by id, limited to the caller's scope (enclosures by
  community code, buildings by grid/community), with a name for people and a (lon, lat) to route to: a
  checkpoint's location, an opening's point on the perimeter, a building's point on surface.
* :func:`grid_lanes` — the edges of the walking network around a grid (its bounding box grown by ``margin_m``)
  as :class:`~spatial.analysis.postman.Arc`, the ids of the lanes *of* the grid (at least half of the edge's
  length within ``edge_m`` metres of the grid), and each edge's geometry and name for drawing the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from shapely.geometry import LineString
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis.postman import Arc
from spatial.errors import OutOfScope
from spatial.store.field import building_scope, grid_scope
from spatial.store.openings import enclosure_scope


@dataclass(frozen=True)
class PatrolStop:
    """A place on a patrol: ``key`` is '<kind>:<id>' (kind checkpoint, opening or building)."""

    key: str
    kind: str
    id: int
    name: str
    lon: float
    lat: float


def stops(session: Session, who: Principal, *, checkpoint_ids: Sequence[int] = (), opening_ids: Sequence[int] = (),
          building_ids: Sequence[int] = ()) -> list[PatrolStop]:
    """The stops in the order asked (checkpoints, then openings, then buildings); OutOfScope naming the ids that do
    not exist or are outside the caller's scope."""
    enclosures, params = enclosure_scope(who)
    buildings, bparams = building_scope(who.area)
    rows = session.execute(text(f"""
        SELECT 'checkpoint' AS kind, c.id, c.name, ST_X(c.location) AS lon, ST_Y(c.location) AS lat, u.n
        FROM unnest(CAST(:checkpoints AS integer[])) WITH ORDINALITY AS u (id, n)
        JOIN checkpoints c ON c.id = u.id JOIN enclosures e ON e.id = c.enclosure_id AND {enclosures}
        UNION ALL
        SELECT 'opening', o.id, coalesce(ck.name, e.name || ' ' || coalesce(o.street_name, '出入口') || ' #' || o.id),
               ST_X(o.location), ST_Y(o.location), 100000 + u.n
        FROM unnest(CAST(:openings AS integer[])) WITH ORDINALITY AS u (id, n)
        JOIN openings o ON o.id = u.id AND o.deleted_at IS NULL
        JOIN enclosures e ON e.id = o.enclosure_id AND {enclosures}
        LEFT JOIN checkpoints ck ON ck.id = o.checkpoint_id
        UNION ALL
        SELECT 'building', b.id, coalesce(b.name, b.code, '楼栋 #' || b.id), ST_X(s.p), ST_Y(s.p), 200000 + u.n
        FROM unnest(CAST(:buildings AS bigint[])) WITH ORDINALITY AS u (id, n)
        JOIN buildings b ON b.id = u.id AND {buildings}
        CROSS JOIN LATERAL (SELECT ST_PointOnSurface(b.footprint) AS p) s
        ORDER BY 6"""), {**params, **bparams, "checkpoints": list(checkpoint_ids), "openings": list(opening_ids),
                         "buildings": list(building_ids)}).all()
    out = [PatrolStop(f"{r.kind}:{r.id}", r.kind, r.id, r.name, r.lon, r.lat) for r in rows]
    found = {s.key for s in out}
    missing = [f"{kind}:{i}" for kind, ids in (("checkpoint", checkpoint_ids), ("opening", opening_ids),
                                               ("building", building_ids)) for i in ids if f"{kind}:{i}" not in found]
    if missing:
        raise OutOfScope(f"{len(missing)} stop(s) do not exist or are not in your area: {', '.join(missing[:20])}",
                       stops=missing)
    return out


@dataclass(frozen=True)
class GridLanes:
    """The walking network around a grid: ``arcs`` to walk on, ``required`` the ids of the grid's own lanes,
    ``geometry``/``names`` per edge id (EPSG:4326, drawn from source to target), ``nodes`` (lon, lat) per node."""

    grid_id: int
    grid_code: str
    grid_name: str
    arcs: tuple[Arc, ...]
    required: frozenset[int]
    geometry: dict[int, LineString]
    names: dict[int, str | None]
    sources: dict[int, int]
    nodes: dict[int, tuple[float, float]]


def grid_lanes(session: Session, who: Principal, *, grid_id: int | None = None, grid_code: str | None = None,
               margin_m: float = 300.0, edge_m: float = 3.0, metric_srid: int = 4547) -> GridLanes:
    """See the module docstring. OutOfScope if the grid does not exist, is retired or is outside the caller's scope."""
    scope, params = grid_scope(who.area)
    grid = session.execute(text(f"""
        SELECT g.id, g.code, g.name FROM grids g
        WHERE g.retired_at IS NULL AND (g.id = :id OR g.code = :code) AND {scope}"""),
        {**params, "id": grid_id, "code": grid_code}).one_or_none()
    if grid is None:
        raise OutOfScope(f"grid {grid_code or grid_id} does not exist or is not in your area")
    rows = session.execute(text("""
        WITH g AS (SELECT boundary, ST_Transform(ST_Buffer(ST_Transform(boundary, :srid), :edge_m), 4326) AS grown,
                          ST_Transform(ST_Expand(ST_Transform(ST_Envelope(boundary), :srid), :margin), 4326) AS area
                   FROM grids WHERE id = :id)
        SELECT s.id, s.source, s.target, s.length_m, s.name, ST_AsBinary(s.geom) AS wkb,
               ST_X(ST_StartPoint(s.geom)) AS x0, ST_Y(ST_StartPoint(s.geom)) AS y0,
               ST_X(ST_EndPoint(s.geom)) AS x1, ST_Y(ST_EndPoint(s.geom)) AS y1,
               s.geom && g.grown AND ST_Length(ST_Intersection(s.geom, g.grown)::geography, false)
                   >= 0.5 * ST_Length(s.geom::geography, false) AS inside
        FROM street_edges s, g
        WHERE s.foot AND s.geom && g.area AND ST_Intersects(s.geom, g.area)"""),
        {"id": grid.id, "srid": metric_srid, "edge_m": edge_m, "margin": margin_m}).all()
    arcs = tuple(Arc(r.id, r.source, r.target, float(r.length_m)) for r in rows)
    nodes = {}
    for r in rows:
        nodes[r.source] = (r.x0, r.y0)
        nodes[r.target] = (r.x1, r.y1)
    return GridLanes(grid.id, grid.code, grid.name, arcs, frozenset(r.id for r in rows if r.inside),
                     {r.id: shapely.from_wkb(bytes(r.wkb)) for r in rows}, {r.id: r.name for r in rows},
                     {r.id: r.source for r in rows}, nodes)
