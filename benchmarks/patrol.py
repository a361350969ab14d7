"""Patrol routes on the real Shatou network: gridgov's tours against OR-Tools, pgr_TSP and the exact optimum.

The OpenStreetMap street network of Shatou (``../shared/data/futian_shatou.gpkg``) is imported into a throw-away
database (``spatial.io.import_streets``). For 10, 30, 80 and 200 stops (random nodes of the largest
connected piece of the walking network, seeded) a closed tour from the first stop is planned:

* **gridgov** — ``tsp.solve_tsp`` as ``plan_tour`` calls it (Held-Karp up to 13 stops; beyond, the exact
  subtour-elimination MIP for 0.2–2 s on symmetric walking costs, then OR-Tools guided local search if unproven);
* **OR-Tools GLS 5 s / 30 s** — the same solver given more time;
* **LKH-3 (elkai), 1 and 10 runs** — the strongest known heuristic (Helsgaun's LKH-3 through the ``elkai`` package
  of the ``bench`` extra), on the same matrix in decimetres;
* **pgr_TSP** — pgRouting's own, on ``pgr_dijkstraCostMatrix`` of the same graph (its order is re-costed on our
  matrix, so every row is measured the same way);
* **exact** — ``spatial.analysis.tsp.solve_symmetric`` (a Dantzig–Fulkerson–Johnson MIP, subtour cuts added until
  the answer is one tour, SCIP in OR-Tools) within ``--exact-time-limit``: the proven optimum, or nothing when out
  of time (then "vs best" is against the best known of the other rows).

Then the driving network (one-way streets): pgr_TSP on an undirected matrix reports a length its order cannot be
driven in; its true directed length is shown beside ours. Finally a street-coverage patrol of a ~600 m square of
lanes: the undirected Chinese postman (``spatial.analysis.postman``) against ``pgr_chinesePostmanCost``.

    python -m benchmarks.patrol [--stops 10 30 80 200] [--exact-time-limit 120] [--database-url URL]
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import SHARED_DATA, database
from spatial.analysis import postman, tsp
from spatial.io import import_streets
from spatial.store import network as net
from spatial.store.engine import make_engine

DATA = SHARED_DATA / "futian_shatou.gpkg"


def main_component(session: Session, network: str = "walk") -> tuple[list[int], dict[int, tuple[float, float]]]:
    """Nodes of the largest strongly connected piece of the network (every node reaches every other), with
    their (lon, lat)."""
    rows = session.execute(text(f"""
        SELECT e.source, e.target, e.reverse_cost, ST_X(a.location) AS ax, ST_Y(a.location) AS ay
        FROM {net.network_view(network)} e JOIN street_nodes a ON a.id = e.source""")).all()
    graph = nx.DiGraph()
    for r in rows:
        graph.add_edge(r.source, r.target)
        if r.reverse_cost >= 0:
            graph.add_edge(r.target, r.source)
    biggest = max(nx.strongly_connected_components(graph), key=len)
    where = {r.source: (r.ax, r.ay) for r in rows if r.source in biggest}
    return sorted(where), where


def pgr_tsp(session: Session, graph: net.Graph, directed_matrix: bool = False) -> tuple[list[int], float]:
    """pgr_TSP on pgr_dijkstraCostMatrix (undirected) of the graph's point vertices: (order of point indexes
    after the first, pgr_TSP's own reported length)."""
    vertices = [s.vertex for s in graph.snaps]
    rows = session.execute(text("""
        SELECT seq, node, agg_cost FROM pgr_TSP(
            format('SELECT * FROM pgr_dijkstraCostMatrix(%L, %L::bigint[], false)',
                   'SELECT id, source, target, cost, reverse_cost FROM gridgov_route_edges', CAST(:vids AS bigint[])),
            CAST(:start AS bigint))"""), {"vids": vertices, "start": vertices[0]}).all()
    index = {v: i for i, v in enumerate(vertices)}
    order = [index[r.node] for r in rows[1:-1]]
    return order, float(rows[-1].agg_cost)


def or_tools(cost: np.ndarray, seconds: float) -> float:
    solution = tsp.solve_tsp(cost, closed=True, time_limit_s=seconds)
    return solution.cost


def lkh(cost: np.ndarray, runs: int) -> float | None:
    """LKH-3's closed tour on ``cost`` (decimetres, as integers), re-costed on ``cost``; None without elkai."""
    try:
        import elkai
    except ImportError:
        return None
    tour = elkai.DistanceMatrix(np.rint(cost * 10).astype(int).tolist()).solve_tsp(runs=runs)
    start = tour.index(0)
    order = (tour[start:-1] + tour[:start])[1:]
    return tsp.tour_cost(cost, order, start=0, closed=True)


def tours(session: Session, stops: list[int], where: dict, args) -> None:
    rng = np.random.default_rng(11)
    print(f"{'stops':>5} {'solver':<18} {'length m':>10} {'vs best':>8} {'time':>8}")
    for n in args.stops:
        chosen = [stops[i] for i in rng.choice(len(stops), n + 1, replace=False)]
        points = [where[v] for v in chosen]
        started = time.perf_counter()
        graph = net.build_graph(session, "walk", points, margin_m=300)
        cost = net.cost_matrix(session, graph)
        matrix_s = time.perf_counter() - started
        rows = []
        started = time.perf_counter()
        ours = tsp.solve_tsp(cost, closed=True)
        rows.append(("gridgov", ours.cost, time.perf_counter() - started, ours.optimal))
        if n > tsp.EXACT_MAX_STOPS:
            for seconds in (5.0, 30.0):
                started = time.perf_counter()
                rows.append((f"OR-Tools GLS {seconds:g} s", or_tools(cost, seconds), time.perf_counter() - started,
                             False))
        for runs in (1, 10):
            started = time.perf_counter()
            length = lkh(cost, runs)
            if length is not None:
                rows.append((f"LKH-3 {runs} run{'s' if runs > 1 else ''}", length, time.perf_counter() - started, False))
        started = time.perf_counter()
        order, reported = pgr_tsp(session, graph)
        rows.append(("pgr_TSP", tsp.tour_cost(cost, order, start=0, closed=True), time.perf_counter() - started,
                     False))
        if n + 1 <= tsp.SYMMETRIC_MAX_STOPS:
            started = time.perf_counter()
            exact = tsp.solve_symmetric(cost, closed=True, time_limit_s=args.exact_time_limit)
            rows.append(("exact (DFJ, SCIP)", exact.cost if exact else float("nan"), time.perf_counter() - started,
                         exact is not None))
        best = min(r[1] for r in rows if np.isfinite(r[1]))
        for name, length, seconds, proven in rows:
            gap = (length / best - 1) * 100 if np.isfinite(length) else float("nan")
            mark = " (proven optimal)" if proven else ""
            print(f"{n:>5} {name:<18} {length:>10.0f} {gap:>7.2f}% {seconds:>7.2f}s{mark}")
        print(f"{n:>5} (cost matrix {n + 1}×{n + 1}: {matrix_s * 1000:.0f} ms; pgr_TSP reported {reported:.0f} m)")


def drive(session: Session, n: int) -> None:
    stops, where = main_component(session, "drive")
    rng = np.random.default_rng(5)
    chosen = [stops[i] for i in rng.choice(len(stops), n + 1, replace=False)]
    graph = net.build_graph(session, "drive", [where[v] for v in chosen], margin_m=500)
    cost = net.cost_matrix(session, graph)
    ours = tsp.solve_tsp(cost, closed=True)
    order, reported = pgr_tsp(session, graph)
    actual = tsp.tour_cost(cost, order, start=0, closed=True)
    print(f"\ndriving, {n} stops, one-way streets honoured: gridgov {ours.cost:.0f} m; pgr_TSP reports "
          f"{reported:.0f} m but its order needs {actual:.0f} m when one-way streets are obeyed "
          f"(+{(actual / ours.cost - 1) * 100:.1f}% over gridgov)")


def postman_vs_pgrouting(session: Session, side_m: float) -> None:
    centre = session.execute(text("SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(geom)) AS c "
                                   "FROM street_edges) q")).one()
    rows = session.execute(text("""
        SELECT s.id, s.source, s.target, s.length_m FROM street_edges s
        WHERE s.foot
          AND s.geom && ST_Transform(ST_Expand(ST_Transform(ST_SetSRID(ST_Point(:x, :y), 4326), 4547), :half), 4326)
          AND s.source <> s.target"""), {"x": centre[0], "y": centre[1], "half": side_m / 2}).all()
    graph = nx.Graph((r.source, r.target) for r in rows)
    biggest = max(nx.connected_components(graph), key=len)
    arcs = [postman.Arc(r.id, r.source, r.target, float(r.length_m)) for r in rows if r.source in biggest]
    started = time.perf_counter()
    tour = postman.postman_tour(arcs, {a.id for a in arcs})
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    pgr = session.execute(text("""
        SELECT pgr_chinesePostmanCost(format(
            'SELECT id, source, target, length_m AS cost, length_m AS reverse_cost FROM street_edges
             WHERE id = ANY(%L::bigint[])', CAST(:ids AS bigint[])))"""),
        {"ids": [a.id for a in arcs]}).scalar()
    pgr_s = time.perf_counter() - started
    print(f"\nstreet-coverage patrol of a {side_m:g} m square ({len(arcs)} lanes, {tour.required_m:.0f} m of lanes, "
          f"{tour.odd_vertices} odd lane ends): undirected postman {tour.length_m:.0f} m in {ours_s:.2f} s "
          f"({'optimal' if tour.optimal else 'heuristic'}); pgr_chinesePostman {pgr:.0f} m in {pgr_s:.2f} s "
          f"(+{(pgr / tour.length_m - 1) * 100:.0f}%: every two-way lane walked twice)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stops", type=int, nargs="*", default=[10, 30, 80, 200])
    parser.add_argument("--exact-time-limit", type=float, default=120.0, help="seconds for the exact MIP")
    parser.add_argument("--square", type=float, default=600.0, help="side of the street-coverage area, metres")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing")
    with database(args.database_url, "gridgov_bench_patrol") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            started = time.perf_counter()
            report = import_streets(session, DATA, origin="bench:shatou")
            session.commit()
            edges = report.tally("street_edges").inserted
            print(f"Shatou streets imported in {time.perf_counter() - started:.1f} s ({edges} edges)")
            stops, where = main_component(session)
            print(f"walking network: {len(stops)} nodes in its largest connected piece\n")
            if args.stops:
                tours(session, stops, where, args)
            session.commit()
            drive(session, 30)
            postman_vs_pgrouting(session, args.square)
            session.rollback()
        engine.dispose()


if __name__ == "__main__":
    main()
