"""Street-coverage patrols: the undirected Chinese postman against brute force, and on a stored grid."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from spatial.access import Principal
from spatial.analysis.postman import Arc, postman_tour
from spatial.store import patrols
from spatial.errors import InvalidInput, NotFound
from tests import factories
from tests.test_inspection_store import ll, town

ADMIN = Principal(1, "admin", "admin")


def check_walk(tour, arcs, required):
    """The walk is a closed chain from the start that uses real edges and covers every required one."""
    by_id = {a.id: a for a in arcs}
    assert tour.walk[0][1] == tour.start and tour.walk[-1][2] == tour.start
    for (_, _, v), (_, u, _) in itertools.pairwise(tour.walk):
        assert v == u
    for edge, u, v in tour.walk:
        assert {u, v} == {by_id[edge].u, by_id[edge].v}
    assert required <= {edge for edge, _, _ in tour.walk}
    assert tour.length_m == pytest.approx(sum(by_id[e].length for e, _, _ in tour.walk))


def brute_force(arcs, required):
    """Required length + the best pairing of odd vertices by shortest paths (exhaustive), for small graphs."""
    graph = nx.Graph()
    for a in arcs:
        if not graph.has_edge(a.u, a.v) or graph[a.u][a.v]["weight"] > a.length:
            graph.add_edge(a.u, a.v, weight=a.length)
    degree = {}
    for a in arcs:
        if a.id in required:
            degree[a.u] = degree.get(a.u, 0) + 1
            degree[a.v] = degree.get(a.v, 0) + 1
    odd = sorted(n for n, d in degree.items() if d % 2)
    dist = dict(nx.all_pairs_dijkstra_path_length(graph))

    def best(nodes):
        if not nodes:
            return 0.0
        first, rest = nodes[0], nodes[1:]
        return min(dist[first][m] + best(rest[:i] + rest[i + 1:]) for i, m in enumerate(rest))

    return sum(a.length for a in arcs if a.id in required) + best(odd)


def test_a_square_with_a_diagonal_walks_the_diagonal_twice():
    arcs = [Arc(1, "A", "B", 100), Arc(2, "B", "C", 100), Arc(3, "C", "D", 100), Arc(4, "D", "A", 100),
            Arc(5, "A", "C", 141)]
    tour = postman_tour(arcs, {1, 2, 3, 4, 5}, start="A")
    assert tour.length_m == pytest.approx(541 + 141) and tour.deadhead_m == pytest.approx(141)
    assert tour.optimal and tour.method == "matching" and tour.odd_vertices == 2
    check_walk(tour, arcs, {1, 2, 3, 4, 5})


def test_an_eulerian_area_is_walked_once():
    arcs = [Arc(i, i, (i + 1) % 6, 50.0 + i) for i in range(6)]
    tour = postman_tour(arcs, set(range(6)), start=3)
    assert tour.length_m == pytest.approx(sum(a.length for a in arcs)) and tour.method == "euler"
    check_walk(tour, arcs, set(range(6)))


def lattice(seed: int, n: int = 4):
    rng = np.random.default_rng(seed)
    arcs, k = [], 0
    for i in range(n):
        for j in range(n):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < n and j + dj < n and rng.random() < 0.85:
                    arcs.append(Arc(k, (i, j), (i + di, j + dj), float(rng.uniform(20, 80))))
                    k += 1
    return arcs


@pytest.mark.parametrize("seed", range(8))
def test_the_tour_is_as_short_as_the_best_pairing(seed):
    arcs = lattice(seed)
    graph = nx.Graph([(a.u, a.v) for a in arcs])
    biggest = max(nx.connected_components(graph), key=len)
    arcs = [a for a in arcs if a.u in biggest]
    required = {a.id for a in arcs}
    tour = postman_tour(arcs, required, start=arcs[0].u)
    assert tour.optimal
    assert tour.length_m == pytest.approx(brute_force(arcs, required))
    check_walk(tour, arcs, required)


@pytest.mark.parametrize("seed", range(4))
def test_a_connected_subset_of_lanes_uses_the_other_streets_to_pair_ends(seed):
    arcs = lattice(seed + 10, 5)
    graph = nx.Graph([(a.u, a.v) for a in arcs])
    biggest = max(nx.connected_components(graph), key=len)
    arcs = [a for a in arcs if a.u in biggest]
    inner = [a for a in arcs if max(a.u[0], a.v[0]) <= 2 and max(a.u[1], a.v[1]) <= 2]
    sub = nx.Graph([(a.u, a.v) for a in inner])
    piece = max(nx.connected_components(sub), key=len)
    required = {a.id for a in inner if a.u in piece}
    tour = postman_tour(arcs, required, start=next(iter(piece)))
    assert tour.optimal and tour.length_m == pytest.approx(brute_force(arcs, required))
    check_walk(tour, arcs, required)


def test_lanes_in_two_pieces_are_joined_and_said_not_proven():
    arcs = [Arc(1, "A", "B", 100), Arc(2, "B", "C", 100), Arc(3, "C", "D", 100), Arc(4, "D", "A", 100)]
    tour = postman_tour(arcs, {1, 3}, start="A")
    assert not tour.optimal and tour.method == "matching+joined" and tour.pieces == 2
    assert tour.length_m == pytest.approx(400)
    check_walk(tour, arcs, {1, 3})


def test_bad_input():
    arcs = [Arc(1, "A", "B", 100), Arc(2, "C", "D", 100)]
    with pytest.raises(InvalidInput):
        postman_tour(arcs, set())
    with pytest.raises(InvalidInput):
        postman_tour(arcs, {1}, start="Z")
    with pytest.raises(InvalidInput, match="cannot be reached"):
        postman_tour(arcs, {1, 2}, start="A")


# -- on a stored grid -----------------------------------------------------------------------------------------------


def test_street_patrol_of_a_grid(db):
    t = town(db)
    west = patrols.plan_street_patrol(db, ADMIN, grid_id=t.grids["west"])
    # lanes of the west grid (x ≤ 200, 3 m of slack): A–B, B–C, B–F, F–H, F–K, C–J and half of 北街 H–I = 690 m;
    # odd ends A, B, J, F, K, I are best paired for 490 m (e.g. A–B 100, F–J 210, K–I 180 via G)
    assert west.lanes == 7 and west.optimal and west.method == "matching"
    assert west.lanes_m == pytest.approx(690, abs=0.5) and west.length_m == pytest.approx(1180, abs=1)
    assert west.geometry.coords[0] == pytest.approx(west.geometry.coords[-1])
    assert {s.name for s in west.steps} >= {"南街", "中巷", "内街", "死胡同", "北街"}
    started = patrols.plan_street_patrol(db, ADMIN, grid_code=factories.COMMUNITY + "01", start=ll(100, 25))
    assert started.offset_m == pytest.approx(5, abs=0.2)
    assert started.length_m == pytest.approx(1180 + 10, abs=1)
    with pytest.raises(InvalidInput):
        patrols.plan_street_patrol(db, ADMIN, grid_id=t.grids["west"], start=ll(3000, 3000))
    with pytest.raises(NotFound):
        patrols.plan_street_patrol(db, ADMIN, grid_code="44030409900199")
    with pytest.raises(NotFound):
        patrols.plan_street_patrol(db, Principal(5, "p", "planner", scope_code="440305001000"), grid_id=t.grids["west"])


# -- exact tours on symmetric matrices (the reference of benchmarks/patrol.py) ----------------------------------------


@pytest.mark.parametrize("shape", ["open", "closed", "to_end"])
@pytest.mark.parametrize("n", [4, 9, 12])
def test_exact_symmetric_tours_match_held_karp(shape, n):
    from spatial.analysis import tsp

    rng = np.random.default_rng(n)
    points = rng.uniform(0, 1000, (n, 2))
    cost = np.linalg.norm(points[:, None] - points[None], axis=2)
    end = n - 1 if shape == "to_end" else None
    exact = tsp.solve_symmetric(cost, end=end, closed=shape == "closed")
    reference = tsp.solve_tsp(cost, end=end, closed=shape == "closed")
    assert exact.optimal and exact.cost == pytest.approx(reference.cost)
    assert sorted(exact.order) == [i for i in range(1, n) if i != end]
    with pytest.raises(InvalidInput):
        tsp.solve_symmetric(cost + np.triu(np.ones((n, n))))      # one-way costs
