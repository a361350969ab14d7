"""Walking inside an enclosure: a pgRouting graph limited to the enclosure, and reach from many points at once.

Adds what :mod:`spatial.store.network` does not have, for coverage and siting:

* :func:`enclosure_graph`: like :func:`spatial.store.network.build_graph`, but only edges that touch the
  enclosure (its polygon grown by ``buffer_m`` metres, so the openings on the perimeter are included) are loaded,
  and points snap only to those edges. Households walk to a checkpoint *inside* their enclosure: a sealed
  opening cannot be crossed, and a path out through one opening and back in through another is not a walk to a
  checkpoint. A building by the wall snaps to the lane inside, not to the street outside.
* :func:`multi_reach`: metres from many source points to many target points, bounded, in **one**
  ``pgr_drivingDistance`` call with several roots (instead of one call per source).

The graph is the same temporary table as :mod:`spatial.store.network` uses (its DDL and vertex assignment are
reused from there, so :func:`~spatial.store.network.cost_matrix`, :func:`~spatial.store.network.reach` and
:func:`~spatial.store.network.legs` work on it unchanged). Distances include each point's straight offset to its
lane, like everywhere in gridgov's routing. Points are EPSG:4326 (lon, lat); metres in ``metric_srid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.store import network as net

DEFAULT_BUFFER_M = 3.0
UNBOUNDED_M = 50_000.0

_AREA = """
WITH area AS (
    SELECT ST_Transform(ST_Buffer(ST_Transform(boundary, :srid), :buffer), 4326) AS g
    FROM enclosures WHERE id = :enclosure
)"""


def _snap_sql(view: str) -> str:
    return _AREA + f"""
    SELECT u.i::int AS i, c.id, c.source, c.target, c.fraction, c.offset_m, ST_X(c.snapped) AS x, ST_Y(c.snapped) AS y
    FROM area, unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS u (lon, lat, i)
    CROSS JOIN LATERAL (
        SELECT k.id, k.source, k.target, ST_LineLocatePoint(k.geom, k.p) AS fraction,
               ST_Distance(k.geom::geography, k.p::geography, false) AS offset_m,
               ST_ClosestPoint(k.geom, k.p) AS snapped
        FROM (SELECT e.id, e.source, e.target, e.geom, ST_SetSRID(ST_Point(u.lon, u.lat), 4326) AS p
              FROM {view} e
              WHERE e.geom && area.g AND ST_Intersects(e.geom, area.g)
              ORDER BY e.geom <-> ST_SetSRID(ST_Point(u.lon, u.lat), 4326)
              LIMIT {net.KNN_CANDIDATES}) k
        ORDER BY offset_m, k.id
        LIMIT 1) c
    """


def enclosure_graph(session: Session, enclosure_id: int, points: Sequence[tuple[float, float]], *,
                    network: str = "walk", buffer_m: float = DEFAULT_BUFFER_M, max_snap_m: float = 200.0,
                    metric_srid: int = 4547) -> net.Graph:
    """Snap ``points`` (lon, lat) to the edges of ``network`` touching the enclosure (grown by ``buffer_m``
    metres) and load those edges, split at the snapped points, as the query's graph (see the module docstring).
    Points farther than ``max_snap_m`` from every such edge stay off the graph (``vertex`` None)."""
    view = net.network_view(network)
    params = {"enclosure": int(enclosure_id), "srid": metric_srid, "buffer": float(buffer_m)}
    snapped: list[tuple[net.Snap, int, int]] = [(net.Snap(point=tuple(p)), 0, 0) for p in points]
    if points:
        rows = session.execute(text(_snap_sql(view)), {**params, "lons": [float(p[0]) for p in points],
                                                        "lats": [float(p[1]) for p in points]}).all()
        for r in rows:
            if r.offset_m <= max_snap_m:
                snap = net.Snap(point=tuple(points[r.i - 1]), edge_id=r.id, fraction=min(max(r.fraction, 0.0), 1.0),
                                offset_m=float(r.offset_m), on_network=(r.x, r.y))
                snapped[r.i - 1] = (snap, r.source, r.target)
    snaps, cuts = net.assign_vertices(snapped)  # same vertex ids as network.build_graph
    session.execute(text(net.CREATE_GRAPH_SQL))  # the one temporary graph table of network.py
    session.execute(text("DELETE FROM gridgov_route_edges"))
    edges = session.execute(text(net.fill_sql(view, _AREA, exact=True)), {
        **params, "cut_edges": [c[0] for c in cuts], "cut_fractions": [c[1] for c in cuts],
        "cut_vertices": [c[2] for c in cuts]}).rowcount
    return net.Graph(network, tuple(snaps), edges)


def multi_reach(session: Session, graph: net.Graph, sources: Sequence[int], targets: Sequence[int],
                max_m: float = UNBOUNDED_M) -> np.ndarray:
    """len(sources) × len(targets) metres from each source point to each target point of ``graph`` (indexes of
    its points), offsets included; ``inf`` beyond ``max_m`` or where no path exists (or a point is off the
    network). One ``pgr_drivingDistance`` call with every source vertex as a root, bounded by ``max_m`` minus the
    smallest source offset."""
    snaps = graph.snaps
    out = np.full((len(sources), len(targets)), np.inf)
    roots: dict[int, list[int]] = {}
    for k, i in enumerate(sources):
        if snaps[i].vertex is not None and snaps[i].offset_m <= max_m:
            roots.setdefault(snaps[i].vertex, []).append(k)
    wanted: dict[int, list[int]] = {}
    for k, j in enumerate(targets):
        if snaps[j].vertex is not None:
            wanted.setdefault(snaps[j].vertex, []).append(k)
    if not roots or not wanted:
        return out
    bound = max_m - min(snaps[sources[k]].offset_m for ks in roots.values() for k in ks)
    rows = session.execute(text("""
        SELECT d.* FROM pgr_drivingDistance(:edges, CAST(:roots AS bigint[]), CAST(:dist AS float8), true) d
        WHERE d.node = ANY(CAST(:targets AS bigint[]))"""),
        {"edges": net.EDGES_SQL, "roots": sorted(roots), "dist": bound,
         "targets": sorted(wanted)}).mappings().all()
    reached: dict[tuple[int, int], float] = {}
    for r in rows:
        root = r.get("from_v", r.get("start_vid"))
        reached[(root, r["node"])] = float(r["agg_cost"])
    for vertex in roots:            # a root reaches itself at 0 even when pgRouting leaves it out
        reached.setdefault((vertex, vertex), 0.0)
    for (root, node), cost in reached.items():
        if node not in wanted:
            continue
        for k in roots[root]:
            for m in wanted[node]:
                total = snaps[sources[k]].offset_m + cost + snaps[targets[m]].offset_m
                if total <= max_m:
                    out[k, m] = min(out[k, m], total)
    for k, i in enumerate(sources):  # the same point as source and target
        for m, j in enumerate(targets):
            if i == j and snaps[i].vertex is not None:
                out[k, m] = 0.0
    return out


def straight_matrix(session: Session, sources: Sequence[tuple[float, float]], targets: Sequence[tuple[float, float]],
                    max_m: float = UNBOUNDED_M) -> np.ndarray:
    """len(sources) × len(targets) straight-line metres between (lon, lat) points on geography (sphere); ``inf``
    beyond ``max_m`` (``ST_DWithin`` on geography prunes the pairs)."""
    out = np.full((len(sources), len(targets)), np.inf)
    if not sources or not targets:
        return out
    rows = session.execute(text("""
        WITH s AS (SELECT i, ST_SetSRID(ST_Point(x, y), 4326)::geography AS g
                   FROM unnest(CAST(:sx AS float8[]), CAST(:sy AS float8[])) WITH ORDINALITY AS u (x, y, i)),
             t AS (SELECT j, ST_SetSRID(ST_Point(x, y), 4326)::geography AS g
                   FROM unnest(CAST(:tx AS float8[]), CAST(:ty AS float8[])) WITH ORDINALITY AS u (x, y, j))
        SELECT s.i, t.j, ST_Distance(s.g, t.g, false) AS d FROM s JOIN t ON ST_DWithin(s.g, t.g, :max_m, false)"""),
        {"sx": [p[0] for p in sources], "sy": [p[1] for p in sources], "tx": [p[0] for p in targets],
         "ty": [p[1] for p in targets], "max_m": float(max_m)}).all()
    for r in rows:
        out[r.i - 1, r.j - 1] = r.d
    return out
