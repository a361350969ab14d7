"""Inspectors' and grid workers' patrols: a tour through chosen checkpoints or buildings, or every lane of a grid.

* :func:`plan_patrol` — from a start position through checkpoints, openings and buildings (any mix), back to the
  start or on to an end position, walking or driving (one-way streets honoured). The stops are looked up by
  :func:`stops` (scoped to the caller); the tour is :func:`spatial.store.tours.plan_tour` (pgRouting cost matrix,
  the order by :mod:`spatial.analysis.tsp`, pgRouting legs).
* :func:`plan_street_patrol` — walk every lane of a grid at least once and come back: the undirected Chinese
  postman on the walking network around the grid (:mod:`spatial.analysis.postman`, in Python on the edges read
  by :func:`grid_lanes`). Walking only: lanes have no direction for people on foot.

The queries behind them:

* :func:`stops` — checkpoints, openings and buildings by id, limited to the caller's scope (enclosures by
  community code, buildings by grid/community), with a name for people and a (lon, lat) to route to: a
  checkpoint's location, an opening's point on the perimeter, a building's point on surface.
* :func:`grid_lanes` — the edges of the walking network around a grid (its bounding box grown by ``margin_m``)
  as :class:`~spatial.analysis.postman.Arc`, the ids of the lanes *of* the grid (at least half of the edge's
  length within ``edge_m`` metres of the grid), and each edge's geometry and name for drawing the route.

Lengths are metres along the network (plus the straight offsets from positions to the network), times seconds
at ``speed_mps``. Positions are EPSG:4326 (lon, lat).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from shapely.geometry import LineString
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis import postman
from spatial.analysis.postman import Arc
from spatial.errors import InvalidInput, OutOfScope
from spatial.store import network as net
from spatial.store import tours
from spatial.store.openings import enclosure_scope
from spatial.store.scope import building_scope, grid_scope

PATROL_ROLES = ("inspector", "planner", "grid_worker")
MAX_PATROL_STOPS = tours.MAX_STOPS
MAX_START_M = 500.0


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


# -- patrols -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patrol:
    """A planned patrol: the tour (order of stop keys, legs with street names, line, length, time) and the stops."""

    tour: tours.Tour
    stops: dict[str, PatrolStop]


def plan_patrol(session: Session, who: Principal, start: tuple[float, float], *, checkpoint_ids: Sequence[int] = (),
                opening_ids: Sequence[int] = (), building_ids: Sequence[int] = (),
                end: tuple[float, float] | None = None, closed: bool = True, network: str = "walk",
                speed_mps: float | None = None, time_limit_s: float | None = None, metric_srid: int = 4547) -> Patrol:
    """Plan a patrol (see the module docstring). ``closed`` (default) comes back to the start; with ``end`` the
    patrol finishes there instead. InvalidInput for an empty or oversized stop list and for stops the network
    cannot reach (their names in the message, their keys in ``detail['unreachable']``)."""
    who.require_role(*PATROL_ROLES)
    _check_position(start, "start")
    if end is not None:
        _check_position(end, "end")
        closed = False
    count = len(checkpoint_ids) + len(opening_ids) + len(building_ids)
    if count == 0:
        raise InvalidInput("choose at least one checkpoint, opening or building to visit")
    if count > MAX_PATROL_STOPS:
        raise InvalidInput(f"at most {MAX_PATROL_STOPS} stops per patrol, got {count}; split the area")
    for kind, ids in (("checkpoint", checkpoint_ids), ("opening", opening_ids), ("building", building_ids)):
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"a {kind} is listed twice")
    found = stops(session, who, checkpoint_ids=checkpoint_ids, opening_ids=opening_ids, building_ids=building_ids)
    by_key = {s.key: s for s in found}
    try:
        tour = tours.plan_tour(session, start, [tours.Stop(s.key, s.lon, s.lat) for s in found], end=end,
                               closed=closed, network=network, speed_mps=speed_mps, time_limit_s=time_limit_s,
                               metric_srid=metric_srid)
    except InvalidInput as exc:
        keys = exc.detail.get("unreachable")
        if not keys:
            raise
        names = [f"{by_key[k].name} ({k})" for k in keys]
        raise InvalidInput(f"{len(keys)} stop(s) cannot be reached on the {network} network: " + "; ".join(names[:20]),
                           unreachable=list(keys)) from None
    return Patrol(tour, by_key)


def _check_position(point: tuple[float, float], what: str) -> None:
    lon, lat = point
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"the {what} ({lon}, {lat}) is not a longitude/latitude")


@dataclass(frozen=True)
class StreetPatrol:
    """Every lane of a grid walked at least once, from ``start`` and back. ``steps``: runs of one street name
    (None: unnamed lane); ``repeated_edges``: edges walked more than once; ``optimal``: proven shortest."""

    grid_id: int
    grid_code: str
    grid_name: str
    geometry: LineString
    length_m: float
    lanes_m: float
    extra_m: float
    duration_s: float
    speed_mps: float
    lanes: int
    steps: tuple[net.Step, ...]
    repeated_edges: tuple[int, ...]
    optimal: bool
    method: str
    start: tuple[float, float]
    offset_m: float


def plan_street_patrol(session: Session, who: Principal, *, grid_id: int | None = None, grid_code: str | None = None,
                       start: tuple[float, float] | None = None, speed_mps: float = 1.2,
                       metric_srid: int = 4547) -> StreetPatrol:
    """Walk every lane of a grid (see the module docstring) from ``start`` (snapped to the nearest network node
    around the grid; default: the grid's lane node nearest its centre) and back."""
    who.require_role(*PATROL_ROLES)
    if not 0.1 <= speed_mps <= 10:
        raise InvalidInput(f"walking speed must be between 0.1 and 10 m/s, got {speed_mps}")
    lanes = grid_lanes(session, who, grid_id=grid_id, grid_code=grid_code, metric_srid=metric_srid)
    if not lanes.required:
        raise InvalidInput(f"grid {lanes.grid_code} has no lanes of the walking network")
    if start is not None:
        _check_position(start, "start")
    node, position, offset = _start_node(session, lanes, start)
    tour = postman.postman_tour(lanes.arcs, set(lanes.required), start=node)
    lengths = {a.id: a.length for a in lanes.arcs}
    coords: list[tuple[float, float]] = [position]
    steps: list[net.Step] = []
    walked: dict[int, int] = {}
    for edge, u, _v in tour.walk:
        line = lanes.geometry[edge]
        part = list(line.coords) if lanes.sources[edge] == u else list(reversed(line.coords))
        coords.extend(part[1:] if part[0] == coords[-1] else part)
        name = lanes.names[edge]
        if steps and steps[-1].name == name:
            steps[-1] = net.Step(name, steps[-1].length_m + lengths[edge])
        else:
            steps.append(net.Step(name, lengths[edge]))
        walked[edge] = walked.get(edge, 0) + 1
    coords.append(position)
    deduped = [coords[0]] + [c for a, c in zip(coords, coords[1:], strict=False) if c != a]
    length = tour.length_m + 2 * offset
    return StreetPatrol(
        lanes.grid_id, lanes.grid_code, lanes.grid_name, LineString(deduped if len(deduped) > 1 else deduped * 2),
        length, tour.required_m, tour.deadhead_m + 2 * offset, length / speed_mps, speed_mps, tour.required_edges,
        tuple(steps), tuple(sorted(e for e, n in walked.items() if n > 1)), tour.optimal, tour.method, position,
        offset)


def _start_node(session: Session, lanes: GridLanes, start) -> tuple[int, tuple[float, float], float]:
    """The network node to start from, the position, and the straight metres between them (sphere). Without a
    start: the node of the grid's lanes nearest the grid's point on surface."""
    given = start is not None
    if given:
        candidates = lanes.nodes
    else:
        own = {n for a in lanes.arcs if a.id in lanes.required for n in (a.u, a.v)}
        candidates = {n: xy for n, xy in lanes.nodes.items() if n in own}
        start = tuple(session.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(boundary) AS p "
                                           "FROM grids WHERE id = :id) q"), {"id": lanes.grid_id}).one())
    ids = sorted(candidates)
    row = session.execute(text("""
        SELECT u.n, ST_Distance(ST_SetSRID(ST_Point(u.x, u.y), 4326)::geography,
                                ST_SetSRID(ST_Point(:lon, :lat), 4326)::geography, false) AS d
        FROM unnest(CAST(:ids AS bigint[]), CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS u (n, x, y)
        ORDER BY d, u.n LIMIT 1"""), {"ids": ids, "xs": [candidates[i][0] for i in ids],
                                      "ys": [candidates[i][1] for i in ids], "lon": start[0], "lat": start[1]}).one()
    if given and row.d > MAX_START_M:
        raise InvalidInput(f"the start is {row.d:,.0f} m from the lanes around the grid; start within "
                           f"{MAX_START_M:g} m of them")
    if not given:
        return row.n, lanes.nodes[row.n], 0.0
    return row.n, (float(start[0]), float(start[1])), float(row.d)
