"""pgRouting on the street network: snap points to it, cost matrices, reach within a distance, route legs.

Networks are the views of the foundation schema: ``walk`` = ``walk_edges`` (footpaths and streets, both
directions) and ``drive`` = ``drive_edges`` (one-way streets honoured: ``reverse_cost < 0`` closes the reverse
direction). Costs are metres (``street_edges.length_m``, measured in the metric CRS at import). Points are
EPSG:4326 (lon, lat).

How a query runs, all in SQL inside the caller's transaction:

1. :func:`snap_points`: each point goes to the nearest edge of the network (KNN ``<->`` on the edge GiST index
   for 8 candidates, then the nearest of those by geography distance), giving the edge, the fraction along it
   and the offset in metres. Points farther than ``max_snap_m`` stay unsnapped.
2. :func:`build_graph`: a temporary table ``gridgov_route_edges`` (emptied at commit) with the network edges
   within ``margin_m`` of the points' bounding box, where every edge holding snapped points is split at them,
   so each point becomes a vertex of its own (ids from :data:`VIRTUAL_BASE`). pgRouting then answers exactly
   for a building in the middle of a lane, and the plain vertex functions (``pgr_dijkstraCostMatrix``,
   ``pgr_drivingDistance``, ``pgr_dijkstra``) apply. Routes leaving that box are not found (raise the margin).
3. :func:`cost_matrix`, :func:`reach`, :func:`legs` run on that table. Every cost includes the straight
   walk from each point to the network and back (its ``offset_m``).

One graph at a time per database session: building another replaces the table's rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput

NETWORKS = {"walk": "walk_edges", "drive": "drive_edges"}
VIRTUAL_BASE = 1_000_000_000_000_000  # ids of the vertices made by splitting edges at snapped points
AT_VERTEX = 1e-6                      # fractions this close to 0 or 1 snap to the edge's end vertex
KNN_CANDIDATES = 8
EDGES_SQL = "SELECT id, source, target, cost, reverse_cost FROM gridgov_route_edges"


@dataclass(frozen=True)
class Snap:
    """Where a point meets the network. ``edge_id`` None: no edge within ``max_snap_m`` (the point is off it).

    ``fraction`` is the position along the edge's geometry (0 at its source); ``offset_m`` the straight-line
    metres from the point to the edge; ``on_network`` the nearest point of the edge (lon, lat); ``vertex`` the
    graph vertex standing for the point once :func:`build_graph` has run.
    """

    point: tuple[float, float]
    edge_id: int | None = None
    fraction: float = 0.0
    offset_m: float = float("inf")
    on_network: tuple[float, float] | None = None
    vertex: int | None = None


@dataclass(frozen=True)
class Graph:
    """The routable graph of one query: the network name and the snapped points, in input order."""

    network: str
    snaps: tuple[Snap, ...]
    edges: int


@dataclass(frozen=True)
class Step:
    """A run of consecutive edges with the same street name (None for unnamed lanes), metres."""

    name: str | None
    length_m: float


@dataclass(frozen=True)
class Leg:
    """The shortest route from point ``source`` to point ``target`` (indexes of the graph's points).

    ``length_m`` includes both offsets; ``geometry`` (EPSG:4326) runs point → network → ... → point.
    """

    source: int
    target: int
    length_m: float
    geometry: LineString
    steps: tuple[Step, ...]
    edge_ids: tuple[int, ...]


def piece_lengths(session: Session, origin: str) -> list[float]:
    """Metres of street (``street_edges.length_m``) in each connected piece of the network imported under
    ``origin``, longest first: every edge counts both ways, whoever may use it (``pgr_connectedComponents``)."""
    return session.execute(text("""
        WITH piece AS (
            SELECT node, component FROM pgr_connectedComponents(format(
                'SELECT id, source, target, 1.0 AS cost, 1.0 AS reverse_cost FROM street_edges WHERE origin = %L',
                CAST(:origin AS text))))
        SELECT sum(e.length_m) FROM street_edges e JOIN piece ON piece.node = e.source
        WHERE e.origin = :origin GROUP BY piece.component ORDER BY 1 DESC"""), {"origin": origin}).scalars().all()


def network_view(network: str) -> str:
    """The pgRouting edge view of ``network`` ('walk' or 'drive'); InvalidInput otherwise."""
    if network not in NETWORKS:
        raise InvalidInput(f"unknown network {network!r}; use one of {', '.join(NETWORKS)}")
    return NETWORKS[network]


def _snap_sql(view: str) -> str:
    return f"""
    SELECT u.i::int AS i, c.id, c.source, c.target, c.fraction, c.offset_m, ST_X(c.snapped) AS x, ST_Y(c.snapped) AS y
    FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS u (lon, lat, i)
    CROSS JOIN LATERAL (
        SELECT k.id, k.source, k.target, ST_LineLocatePoint(k.geom, k.p) AS fraction,
               ST_Distance(k.geom::geography, k.p::geography, false) AS offset_m, ST_ClosestPoint(k.geom, k.p) AS snapped
        FROM (SELECT e.id, e.source, e.target, e.geom, ST_SetSRID(ST_Point(u.lon, u.lat), 4326) AS p
              FROM {view} e
              ORDER BY e.geom <-> ST_SetSRID(ST_Point(u.lon, u.lat), 4326)
              LIMIT {KNN_CANDIDATES}) k
        ORDER BY offset_m, k.id
        LIMIT 1) c
    """


def snap_points(session: Session, network: str, points: Sequence[tuple[float, float]], *,
                max_snap_m: float = 200.0) -> list[tuple[Snap, int, int]]:
    """Snap (lon, lat) points to ``network``: for each, (Snap, edge source, edge target); vertex not yet set.

    Points farther than ``max_snap_m`` metres from every edge (or an empty network) give an unsnapped Snap.
    """
    view = network_view(network)
    out: list[tuple[Snap, int, int]] = [(Snap(point=tuple(p)), 0, 0) for p in points]
    if not points:
        return out
    rows = session.execute(text(_snap_sql(view)), {"lons": [float(p[0]) for p in points],
                                                    "lats": [float(p[1]) for p in points]}).all()
    for r in rows:
        if r.offset_m <= max_snap_m:
            snap = Snap(point=tuple(points[r.i - 1]), edge_id=r.id, fraction=min(max(r.fraction, 0.0), 1.0),
                        offset_m=float(r.offset_m), on_network=(r.x, r.y))
            out[r.i - 1] = (snap, r.source, r.target)
    return out


def assign_vertices(snapped: list[tuple[Snap, int, int]]) -> tuple[list[Snap], list[tuple[int, float, int]]]:
    """Give each snapped point its vertex: the edge's end vertex when it sits at an end, else a virtual vertex
    shared by every point at the same place of the same edge. Returns (snaps, cuts as (edge, fraction, vertex))."""
    cuts: dict[tuple[int, float], int] = {}
    snaps = []
    for snap, source, target in snapped:
        if snap.edge_id is None:
            snaps.append(snap)
            continue
        if snap.fraction <= AT_VERTEX:
            vertex = source
        elif snap.fraction >= 1 - AT_VERTEX:
            vertex = target
        else:
            key = (snap.edge_id, round(snap.fraction, 9))
            vertex = cuts.setdefault(key, VIRTUAL_BASE + len(cuts))
        snaps.append(Snap(snap.point, snap.edge_id, snap.fraction, snap.offset_m, snap.on_network, vertex))
    return snaps, sorted((edge, fraction, vertex) for (edge, fraction), vertex in cuts.items())


CREATE_GRAPH_SQL = """
CREATE TEMP TABLE IF NOT EXISTS gridgov_route_edges (
    id bigint, source bigint, target bigint, cost float8, reverse_cost float8, edge_id bigint, f0 float8, f1 float8
) ON COMMIT DELETE ROWS"""


BBOX_AREA_SQL = """
    WITH area AS (
        SELECT ST_Transform(ST_Expand(ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326), :srid), :margin), 4326) AS g
    )"""


def fill_sql(view: str, area_sql: str = BBOX_AREA_SQL, exact: bool = False) -> str:
    """INSERT of the temporary graph: edges of ``view`` in the ``area`` CTE (bounding-box test, or a true
    intersection if ``exact``), split at the snapped points (``:cut_*`` arrays)."""
    within = " AND ST_Intersects(e.geom, area.g)" if exact else ""
    return area_sql + f""", cuts AS (
        SELECT c.edge_id, c.f, c.v, lag(c.f, 1, 0.0::float8) OVER w AS f_prev, lag(c.v) OVER w AS v_prev,
               row_number() OVER (PARTITION BY c.edge_id ORDER BY c.f DESC) AS from_end
        FROM unnest(CAST(:cut_edges AS bigint[]), CAST(:cut_fractions AS float8[]), CAST(:cut_vertices AS bigint[]))
             AS c (edge_id, f, v)
        WINDOW w AS (PARTITION BY c.edge_id ORDER BY c.f)
    ), pieces AS (
        SELECT edge_id, f_prev AS f0, f AS f1, v_prev AS a, v AS b FROM cuts
        UNION ALL
        SELECT edge_id, f, 1.0, v, NULL FROM cuts WHERE from_end = 1
    )
    INSERT INTO gridgov_route_edges (id, source, target, cost, reverse_cost, edge_id, f0, f1)
    SELECT row_number() OVER (), x.* FROM (
        SELECT coalesce(p.a, e.source), coalesce(p.b, e.target), e.cost * (p.f1 - p.f0),
               CASE WHEN e.reverse_cost < 0 THEN -1 ELSE e.reverse_cost * (p.f1 - p.f0) END, e.id, p.f0, p.f1
        FROM pieces p JOIN {view} e ON e.id = p.edge_id
        UNION ALL
        SELECT e.source, e.target, e.cost, e.reverse_cost, e.id, 0.0, 1.0
        FROM {view} e, area
        WHERE e.geom && area.g{within} AND e.id <> ALL (CAST(:cut_edges AS bigint[]))
    ) x"""


def build_graph(session: Session, network: str, points: Sequence[tuple[float, float]], *, margin_m: float = 500.0,
                max_snap_m: float = 200.0, metric_srid: int = 4547) -> Graph:
    """Snap ``points`` (lon, lat) to ``network`` and load the edges within ``margin_m`` metres of their bounding
    box (measured in ``metric_srid``) into the query's temporary graph, split at the snapped points."""
    view = network_view(network)
    snaps, cuts = assign_vertices(snap_points(session, network, points, max_snap_m=max_snap_m))
    session.execute(text(CREATE_GRAPH_SQL))
    session.execute(text("DELETE FROM gridgov_route_edges"))
    lons = [p[0] for p in points] or [0.0]
    lats = [p[1] for p in points] or [0.0]
    edges = session.execute(text(fill_sql(view)), {
        "x0": min(lons), "y0": min(lats), "x1": max(lons), "y1": max(lats), "srid": metric_srid,
        "margin": float(margin_m), "cut_edges": [c[0] for c in cuts], "cut_fractions": [c[1] for c in cuts],
        "cut_vertices": [c[2] for c in cuts]}).rowcount
    return Graph(network, tuple(snaps), edges)


def _vertices(graph: Graph) -> list[int]:
    return sorted({s.vertex for s in graph.snaps if s.vertex is not None})


def cost_matrix(session: Session, graph: Graph) -> np.ndarray:
    """n × n metres between the graph's points (row = from), offsets included; ``inf`` where no path exists
    (or a point is off the network); 0 on the diagonal. Directed on the driving network."""
    n = len(graph.snaps)
    vertices = _vertices(graph)
    net: dict[tuple[int, int], float] = {}
    if len(vertices) > 1:
        rows = session.execute(text(
            "SELECT start_vid, end_vid, agg_cost FROM pgr_dijkstraCostMatrix(:edges, CAST(:vids AS bigint[]), true)"),
            {"edges": EDGES_SQL, "vids": vertices}).all()
        net = {(r.start_vid, r.end_vid): r.agg_cost for r in rows}
    matrix = np.full((n, n), np.inf)
    for i, a in enumerate(graph.snaps):
        for j, b in enumerate(graph.snaps):
            if i == j:
                matrix[i, j] = 0.0
            elif a.vertex is not None and b.vertex is not None:
                path = 0.0 if a.vertex == b.vertex else net.get((a.vertex, b.vertex), np.inf)
                matrix[i, j] = a.offset_m + path + b.offset_m
    return matrix


def reach(session: Session, graph: Graph, source: int, max_m: float) -> np.ndarray:
    """Metres from point ``source`` to every point of the graph, offsets included; ``inf`` beyond ``max_m`` or
    unreachable (``pgr_drivingDistance`` from the source's vertex, bounded by ``max_m`` minus its offset)."""
    origin = graph.snaps[source]
    out = np.full(len(graph.snaps), np.inf)
    if origin.vertex is None or origin.offset_m > max_m:
        return out
    rows = session.execute(text(
        "SELECT node, agg_cost FROM pgr_drivingDistance(:edges, CAST(:root AS bigint), CAST(:dist AS float8), true)"),
        {"edges": EDGES_SQL, "root": origin.vertex, "dist": max_m - origin.offset_m}).all()
    reached = {r.node: r.agg_cost for r in rows}
    reached[origin.vertex] = 0.0
    for i, snap in enumerate(graph.snaps):
        if snap.vertex in reached:
            cost = origin.offset_m + reached[snap.vertex] + snap.offset_m
            if cost <= max_m:
                out[i] = cost
    out[source] = 0.0
    return out


_LEGS_SQL = """
WITH path AS (
    SELECT * FROM pgr_dijkstra(:edges,
        format('SELECT s AS source, t AS target FROM unnest(%L::bigint[], %L::bigint[]) AS u (s, t)',
               CAST(:src AS bigint[]), CAST(:dst AS bigint[])), true)
)
SELECT p.start_vid, p.end_vid, p.path_seq, p.cost, r.edge_id, s.name,
       ST_AsBinary(CASE WHEN p.node = r.source THEN ST_LineSubstring(s.geom, r.f0, r.f1)
                        ELSE ST_Reverse(ST_LineSubstring(s.geom, r.f0, r.f1)) END) AS wkb
FROM path p
JOIN gridgov_route_edges r ON r.id = p.edge
JOIN street_edges s ON s.id = r.edge_id
ORDER BY p.start_vid, p.end_vid, p.path_seq"""


def legs(session: Session, graph: Graph, pairs: Sequence[tuple[int, int]]) -> list[Leg]:
    """The shortest route for each (from point, to point) pair, in one ``pgr_dijkstra`` call (combinations).

    InvalidInput if a point is off the network or a pair has no path (its indexes are in the error detail).
    """
    snaps = graph.snaps
    off = sorted({i for pair in pairs for i in pair if snaps[i].vertex is None})
    if off:
        raise InvalidInput("some points are too far from the network to route", points=off)
    wanted = {(snaps[a].vertex, snaps[b].vertex) for a, b in pairs if snaps[a].vertex != snaps[b].vertex}
    parts: dict[tuple[int, int], list] = {key: [] for key in wanted}
    if wanted:
        src, dst = zip(*sorted(wanted), strict=True)
        for r in session.execute(text(_LEGS_SQL), {"edges": EDGES_SQL, "src": list(src), "dst": list(dst)}):
            parts[(r.start_vid, r.end_vid)].append(r)
    missing = [pair for pair in pairs if (snaps[pair[0]].vertex, snaps[pair[1]].vertex) in parts
               and not parts[(snaps[pair[0]].vertex, snaps[pair[1]].vertex)]]
    if missing:
        raise InvalidInput("no route on the network between some points", pairs=[list(p) for p in missing])
    return [_leg(graph, a, b, parts.get((snaps[a].vertex, snaps[b].vertex), [])) for a, b in pairs]


def _leg(graph: Graph, a: int, b: int, rows: list) -> Leg:
    start, end = graph.snaps[a], graph.snaps[b]
    coords: list[tuple[float, float]] = [start.point, start.on_network]
    steps: list[Step] = []
    for r in rows:
        coords.extend(tuple(c) for c in shapely.get_coordinates(shapely.from_wkb(bytes(r.wkb))))
        if steps and steps[-1].name == r.name:
            steps[-1] = Step(r.name, steps[-1].length_m + r.cost)
        else:
            steps.append(Step(r.name, r.cost))
    coords.extend([end.on_network, end.point])
    deduped = [coords[0]] + [c for prev, c in itertools.pairwise(coords) if c != prev]
    if len(deduped) < 2:
        deduped = deduped * 2
    length = (start.offset_m + sum(r.cost for r in rows) + end.offset_m) if a != b else 0.0
    return Leg(a, b, length, LineString(deduped), tuple(steps), tuple(r.edge_id for r in rows))


@dataclass(frozen=True)
class EdgeLines:
    """Edges of a network around an area: ids, source and target node ids, and each edge's vertices in
    ``metric_srid`` metres ((n, 2) arrays, drawn from source to target)."""

    ids: list[int]
    sources: list[int]
    targets: list[int]
    lines: list[np.ndarray]


def edge_lines(session: Session, network: str, box: tuple[float, float, float, float], *, margin_m: float = 300.0,
               metric_srid: int = 4547) -> EdgeLines:
    """The edges of ``network`` within ``margin_m`` metres of ``box`` (lon0, lat0, lon1, lat1; EPSG:4326), their
    geometry transformed to ``metric_srid`` (for map matching, :mod:`spatial.analysis.mapmatch`)."""
    view = network_view(network)
    rows = session.execute(text(BBOX_AREA_SQL + f"""
        SELECT e.id, e.source, e.target, ST_AsBinary(ST_Transform(e.geom, :srid)) AS wkb
        FROM {view} e, area WHERE e.geom && area.g ORDER BY e.id"""),
        {"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "srid": metric_srid,
         "margin": float(margin_m)}).all()
    return EdgeLines([r.id for r in rows], [r.source for r in rows], [r.target for r in rows],
                     [shapely.get_coordinates(shapely.from_wkb(bytes(r.wkb))) for r in rows])
