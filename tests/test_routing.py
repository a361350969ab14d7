"""Routing: the TSP solver against brute force, and tours on a small real pgRouting network.

The network, in metres east/north of the test origin (tests/factories.py), lanes named as shown:

    D(0,100) ──东街── E(100,100) ──东街── F(200,100)          G(600,600) ── H(700,600)   (an island)
       │               │                 │
     西巷            中巷              东巷
       │               │                 │
    A(0,0) ──南街── B(100,0) ──南街──▶ C(200,0)              (B→C one-way for cars)
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point

from spatial.analysis import tsp
from spatial.analysis.tsp import polish_cycle, solve_tsp, tour_cost
from spatial.errors import InvalidInput
from spatial.store import bulk, network
from spatial.store.tours import Stop, plan_tour
from tests.factories import ORIGIN_X, ORIGIN_Y

TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)
NODES = {"A": (0, 0), "B": (100, 0), "C": (200, 0), "D": (0, 100), "E": (100, 100), "F": (200, 100),
         "G": (600, 600), "H": (700, 600)}
EDGES = [("A", "B", "南街", False), ("B", "C", "南街", True), ("A", "D", "西巷", False), ("B", "E", "中巷", False),
         ("C", "F", "东巷", False), ("D", "E", "东街", False), ("E", "F", "东街", False), ("G", "H", "孤岛路", False)]


def ll(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the origin → (lon, lat)."""
    lon, lat = TO_LONLAT.transform(ORIGIN_X + x, ORIGIN_Y + y)
    return float(lon), float(lat)


@pytest.fixture
def net(db):
    nodes = [{"origin_ref": k, "location": Point(ll(*xy))} for k, xy in NODES.items()]
    edges = [{"origin_ref": f"{a}{b}", "source_ref": a, "target_ref": b, "name": name, "oneway": oneway,
              "foot": True, "car": True, "highway": "residential",
              "length_m": float(np.hypot(*np.subtract(NODES[b], NODES[a]))), "geom": LineString([ll(*NODES[a]), ll(*NODES[b])])}
             for a, b, name, oneway in EDGES]
    bulk.load_street_network(db, "test", nodes, edges)
    return db


# -- the solver, pure ---------------------------------------------------------------------------------------------


def brute_force(cost: np.ndarray, start: int, end: int | None, closed: bool) -> float:
    stops = [i for i in range(len(cost)) if i not in (start, end)]
    return min(tour_cost(cost, p, start=start, end=end, closed=closed) for p in itertools.permutations(stops))


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("shape", ["open", "closed", "to_end"])
def test_held_karp_matches_brute_force_on_asymmetric_matrices(n, shape):
    rng = np.random.default_rng(n)
    for _ in range(5):
        cost = rng.uniform(1, 100, (n, n))
        np.fill_diagonal(cost, 0)
        end = n - 1 if shape == "to_end" and n > 1 else None
        solution = solve_tsp(cost, start=0, end=end, closed=shape == "closed")
        assert solution.optimal
        assert solution.cost == pytest.approx(brute_force(cost, 0, end, shape == "closed"))
        assert solution.cost == pytest.approx(tour_cost(cost, solution.order, start=0, end=end, closed=shape == "closed"))
        assert sorted(solution.order) == [i for i in range(n) if i not in (0, end)]


def _beyond_held_karp(shape: str, one_way_extra: float = 0.0):
    """A random matrix just past Held-Karp's size; ``one_way_extra`` makes it asymmetric (driving)."""
    rng = np.random.default_rng(42)
    n = tsp.EXACT_MAX_STOPS + 2 + (shape == "to_end")
    points = rng.uniform(0, 1000, (n, 2))
    cost = np.linalg.norm(points[:, None] - points[None], axis=2) + np.triu(np.full((n, n), one_way_extra), 1)
    end = n - 1 if shape == "to_end" else None
    exact = tsp._held_karp(cost, 0, end, shape == "closed", [i for i in range(1, n) if i != end])
    return cost, end, exact


@pytest.mark.parametrize("shape", ["open", "closed", "to_end"])
def test_or_tools_is_near_the_optimum_on_asymmetric_costs(shape):
    cost, end, exact = _beyond_held_karp(shape, one_way_extra=37.0)
    heuristic = solve_tsp(cost, end=end, closed=shape == "closed", time_limit_s=0.5)
    assert heuristic.method == "or-tools-gls" and not heuristic.optimal
    assert sorted(heuristic.order) == [i for i in range(1, cost.shape[0]) if i != end]
    assert exact.cost <= heuristic.cost <= exact.cost * 1.03


@pytest.mark.parametrize("shape", ["open", "closed", "to_end"])
def test_symmetric_costs_beyond_held_karp_are_solved_exactly(shape):
    cost, end, exact = _beyond_held_karp(shape)
    solution = solve_tsp(cost, end=end, closed=shape == "closed", time_limit_s=5)
    assert solution.method == "exact-dfj" and solution.optimal
    assert solution.cost == pytest.approx(exact.cost)


def test_arcs_that_cannot_be_used_are_avoided_or_reported():
    cost = np.array([[0, 1, 5], [1, 0, np.inf], [5, 1, 0]], dtype=float)
    assert solve_tsp(cost).order == (2, 1)  # the cheap first step 0→1 leads nowhere
    impossible = np.array([[0, np.inf, np.inf], [1, 0, 1], [1, 1, 0]], dtype=float)
    with pytest.raises(InvalidInput):
        solve_tsp(impossible)
    with pytest.raises(InvalidInput):
        solve_tsp(cost, end=2, closed=True)


# -- the network ----------------------------------------------------------------------------------------------------


def test_points_snap_to_the_middle_of_lanes(net):
    snapped = network.snap_points(net, "walk", [ll(50, 10), ll(1000, 1000)], max_snap_m=50)
    snap, _, _ = snapped[0]
    assert snap.fraction == pytest.approx(0.5, abs=0.01) and snap.offset_m == pytest.approx(10, abs=0.1)
    assert snapped[1][0].edge_id is None  # 400 m from the island: off the network


def test_walking_costs_are_symmetric_and_driving_honours_one_way(net):
    points = [ll(50, 10), ll(150, -10), ll(100, 50)]
    graph = network.build_graph(net, "walk", points)
    walk = network.cost_matrix(net, graph)
    assert walk[0, 1] == pytest.approx(10 + 100 + 10, abs=0.3)
    assert walk[0, 2] == pytest.approx(10 + 50 + 50 + 0, abs=0.3)  # to mid B–E, on the lane
    np.testing.assert_allclose(walk, walk.T, atol=1e-6)
    graph = network.build_graph(net, "drive", points)
    drive = network.cost_matrix(net, graph)
    assert drive[0, 1] == pytest.approx(120, abs=0.3)
    # back against the one-way: on to C, up 东巷, along 东街 to E, down 中巷 to B, then to the middle of A–B
    assert drive[1, 0] == pytest.approx(10 + 50 + 100 + 100 + 100 + 50 + 10, abs=0.5)


def test_reach_is_bounded_by_the_distance(net):
    graph = network.build_graph(net, "walk", [ll(50, 10), ll(150, -10), ll(200, 90), ll(650, 600)])
    reached = network.reach(net, graph, 0, 130)
    assert reached[0] == 0 and reached[1] == pytest.approx(120, abs=0.3)
    assert np.isinf(reached[2]) and np.isinf(reached[3])
    assert network.reach(net, graph, 0, 1000)[2] == pytest.approx(10 + 150 + 90 + 0, abs=0.5)


def test_legs_carry_geometry_length_and_street_names(net):
    graph = network.build_graph(net, "walk", [ll(50, 10), ll(200, 50)])
    (leg,) = network.legs(net, graph, [(0, 1)])
    assert leg.length_m == pytest.approx(10 + 150 + 50, abs=0.5)
    assert leg.geometry.coords[0] == pytest.approx(ll(50, 10)) and leg.geometry.coords[-1] == pytest.approx(ll(200, 50))
    assert [step.name for step in leg.steps] == ["南街", "东巷"]
    assert [round(step.length_m) for step in leg.steps] == [150, 50]


def test_a_tour_visits_every_stop_in_the_best_order(net):
    stops = [Stop("far", *ll(200, 60)), Stop("near", *ll(60, -5)), Stop("mid", *ll(140, 5))]
    tour = plan_tour(net, ll(0, 10), stops)
    assert tour.order == ("near", "mid", "far") and tour.optimal and tour.shape == "open"
    assert tour.length_m == pytest.approx(sum(leg.length_m for leg in tour.legs))
    assert tour.length_m == pytest.approx(10 + 60 + 5 + 5 + 80 + 5 + 5 + 60 + 60 + 0, abs=1)
    assert tour.duration_s == pytest.approx(tour.length_m / 1.2)
    assert tour.geometry.coords[0] == pytest.approx(ll(0, 10))
    closed = plan_tour(net, ll(0, 10), stops, closed=True)
    assert closed.geometry.coords[-1] == pytest.approx(ll(0, 10)) and closed.length_m > tour.length_m
    ending = plan_tour(net, ll(0, 10), stops, end=ll(100, 100), network="drive", speed_mps=10)
    assert ending.geometry.coords[-1] == pytest.approx(ll(100, 100)) and ending.shape == "to_end"
    assert ending.duration_s == pytest.approx(ending.length_m / 10)


def test_unreachable_stops_are_named_or_left_out(net):
    stops = [Stop(1, *ll(60, -5)), Stop(2, *ll(650, 605)), Stop(3, *ll(3000, 3000))]
    with pytest.raises(InvalidInput) as error:
        plan_tour(net, ll(0, 10), stops)
    assert error.value.detail["unreachable"] == [2, 3]
    tour = plan_tour(net, ll(0, 10), stops, skip_unreachable=True)
    assert tour.order == (1,) and tour.unreachable == (2, 3)


@pytest.mark.parametrize("kwargs", [
    {"stops": []}, {"stops": [Stop(1, *ll(10, 0)), Stop(1, *ll(20, 0))]}, {"network": "boat"},
    {"speed_mps": 0}, {"closed": True, "end": ll(0, 0)}, {"start": ll(5000, 5000)},
])
def test_bad_tours_are_refused(net, kwargs):
    args = {"start": ll(0, 10), "stops": [Stop(1, *ll(60, -5))], **kwargs}
    with pytest.raises(InvalidInput):
        plan_tour(net, args.pop("start"), args.pop("stops"), **args)


def test_the_route_geometry_is_one_line_through_the_legs(net):
    stops = [Stop(i, *ll(x, y)) for i, (x, y) in enumerate([(40, 5), (100, 70), (180, 95), (200, 20)])]
    tour = plan_tour(net, ll(0, 10), stops)
    to_m = Transformer.from_crs(4326, 4547, always_xy=True)
    metric = shapely.transform(tour.geometry, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
    assert metric.length == pytest.approx(tour.length_m, rel=0.002)


def test_polishing_never_lengthens_a_tour_and_reaches_a_local_optimum():
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 1000, (60, 2))
    cost = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    cycle = rng.permutation(60)
    polished = polish_cycle(cost, cycle, time.perf_counter() + 30)
    length = lambda t: float(cost[t, np.roll(t, -1)].sum())
    assert sorted(polished.tolist()) == list(range(60)) and length(polished) < 0.5 * length(cycle)
    again = polish_cycle(cost, polished, time.perf_counter() + 30)
    assert length(again) == pytest.approx(length(polished))  # no improving 2-opt or or-opt move is left
    for i in range(60):                                        # 2-opt optimal: no two edges cross
        for j in range(i + 2, 60 - (i == 0)):
            a, b, c, d = polished[i], polished[(i + 1) % 60], polished[j], polished[(j + 1) % 60]
            assert cost[a, c] + cost[b, d] >= cost[a, b] + cost[c, d] - 1e-9


def test_large_closed_walking_tours_are_polished_and_open_ones_kept_as_searched():
    rng = np.random.default_rng(8)
    points = rng.uniform(0, 2000, (150, 2))
    cost = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    closed = solve_tsp(cost, closed=True, time_limit_s=0.5)
    assert closed.method in {"or-tools-gls", "or-tools-gls+2opt"} and sorted(closed.order) == list(range(1, 150))
    assert closed.cost == pytest.approx(tour_cost(cost, closed.order, start=0, closed=True))
    assert solve_tsp(cost, time_limit_s=0.3).method == "or-tools-gls"
