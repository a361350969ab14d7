"""Tours on the street network: the order to visit stops in, and the route through them.

Used by field staff (visit routes through unvisited households) and inspectors (patrol routes through
checkpoints or buildings). Three shapes of tour, all from a ``start`` position:

* ``open``    start → every stop, ending at the last stop (a worker's round);
* ``closed``  start → every stop → back to start;
* ``to_end``  start → every stop → ``end``.

On the ``walk`` network (both directions everywhere) or the ``drive`` network (one-way streets honoured; the
cost matrix is then asymmetric). Distances are metres, times seconds at ``speed_mps`` (default 1.2 m/s walking,
8.3 m/s = 30 km/h driving). Positions are EPSG:4326 (lon, lat); convert at the edge.

What runs where: snapping, the cost matrix (``pgr_dijkstraCostMatrix``) and the legs (``pgr_dijkstra``) run in
PostGIS/pgRouting (:mod:`spatial.store.network`), where the network lives; the order is solved here in Python
(:func:`solve_tsp`): exactly by Held-Karp dynamic programming up to :data:`EXACT_MAX_STOPS` stops (proven
optimal), else by OR-Tools' routing solver (path-cheapest-arc, then guided local search within a time limit).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput
from spatial.store import network as net

EXACT_MAX_STOPS = 13
MAX_STOPS = 300
DEFAULT_SPEED_MPS = {"walk": 1.2, "drive": 8.3}
_SCALE = 10          # OR-Tools works on integers: decimetres
_BIG = 10**9         # an arc that must not be used


@dataclass(frozen=True)
class Stop:
    """A place to visit: ``key`` identifies it to the caller (a building id, a checkpoint id...)."""

    key: Hashable
    lon: float
    lat: float


@dataclass(frozen=True)
class TspSolution:
    """A visiting order of matrix indexes, from ``start`` through every other index (and ``end`` if given).

    ``order`` lists the stops only (start and end excluded); ``cost`` is the tour's total in matrix units;
    ``optimal`` says whether it is proven optimal; ``method`` is 'trivial', 'held-karp' or 'or-tools-gls'.
    """

    order: tuple[int, ...]
    cost: float
    optimal: bool
    method: str


@dataclass(frozen=True)
class RouteLeg:
    from_key: Hashable
    to_key: Hashable
    length_m: float
    duration_s: float
    geometry: LineString
    steps: tuple[net.Step, ...]


@dataclass(frozen=True)
class Tour:
    """The planned tour. ``order`` are stop keys in visiting order; ``arrival_m`` the metres walked (or driven)
    on arrival at each of them; ``geometry`` (EPSG:4326) the whole route; ``unreachable`` the stops left out
    because no route reaches them (only with ``skip_unreachable``)."""

    network: str
    shape: str
    order: tuple[Hashable, ...]
    arrival_m: tuple[float, ...]
    legs: tuple[RouteLeg, ...]
    length_m: float
    duration_s: float
    speed_mps: float
    geometry: LineString
    unreachable: tuple[Hashable, ...]
    optimal: bool
    solver: str


# -- the order: a pure function of a cost matrix ----------------------------------------------------------------


def solve_tsp(cost: np.ndarray, *, start: int = 0, end: int | None = None, closed: bool = False,
              time_limit_s: float | None = None) -> TspSolution:
    """Best order through every index of the square ``cost`` matrix (row = from; may be asymmetric), from
    ``start``; then back to ``start`` if ``closed``, or to ``end`` if given, else ending anywhere.

    Exact (Held-Karp) up to :data:`EXACT_MAX_STOPS` stops; beyond, for a symmetric matrix, the exact
    subtour-elimination MIP of :mod:`spatial.analysis.tsp_exact` within ``time_limit_s``; otherwise (or if it
    runs out of time) OR-Tools guided local search for ``time_limit_s`` seconds (default grows with the
    number of stops, 0.2–2 s). ``inf`` entries are arcs
    that cannot be used; InvalidInput if no order avoids them.

    >>> m = np.array([[0, 1, 5, 4], [1, 0, 1, 5], [5, 1, 0, 1], [4, 5, 1, 0]], dtype=float)
    >>> solve_tsp(m).order, solve_tsp(m, closed=True).cost, solve_tsp(m, end=3).order
    ((1, 2, 3), 7.0, (1, 2))
    """
    cost = np.asarray(cost, dtype=float)
    n = cost.shape[0]
    if cost.shape != (n, n) or n == 0:
        raise InvalidInput("the cost matrix must be square and not empty")
    if closed and end is not None:
        raise InvalidInput("a tour is either closed (back to start) or goes to an end point, not both")
    if end is not None and end == start:
        raise InvalidInput("use closed=True for a tour that ends where it starts")
    stops = [i for i in range(n) if i != start and i != end]
    if len(stops) <= EXACT_MAX_STOPS:
        solution = _held_karp(cost, start, end, closed, stops)
    else:
        limit = time_limit_s if time_limit_s is not None else min(2.0, 0.2 + 0.01 * len(stops))
        solution = _exact_symmetric(cost, start, end, closed, limit) or _or_tools(cost, start, end, closed, limit)
    if not np.isfinite(solution.cost):
        raise InvalidInput("no order visits every stop: some of them cannot be reached from the others")
    return solution


def _exact_symmetric(cost: np.ndarray, start: int, end: int | None, closed: bool, limit: float) -> TspSolution | None:
    """For symmetric matrices (walking): the proven optimum if the subtour-elimination MIP finds it within
    ``limit`` seconds (80 stops on a real network: ~1 s, where guided local search lands 1–2% above), else None."""
    finite = np.isfinite(cost)
    if not finite.all() or not np.allclose(cost, cost.T):
        return None
    from spatial.analysis.tsp_exact import solve_symmetric  # it builds on this module

    return solve_symmetric(cost, start=start, end=end, closed=closed, time_limit_s=limit)


def tour_cost(cost: np.ndarray, order: Sequence[int], *, start: int = 0, end: int | None = None,
              closed: bool = False) -> float:
    """Total cost of visiting ``order`` from ``start`` (then back to it if ``closed``, or on to ``end``)."""
    path = [start, *order] + ([start] if closed else [end] if end is not None else [])
    return float(sum(cost[a, b] for a, b in itertools.pairwise(path)))


def _held_karp(cost: np.ndarray, start: int, end: int | None, closed: bool, stops: list[int]) -> TspSolution:
    """Dynamic programming over subsets of stops: dp[S][j] = cheapest path from start through S ending at j."""
    m = len(stops)
    if m == 0:
        return TspSolution((), tour_cost(cost, (), start=start, end=end, closed=closed), True, "trivial")
    sub = cost[np.ix_(stops, stops)]
    first = cost[start, stops]
    last = cost[stops, start] if closed else cost[stops, end] if end is not None else np.zeros(m)
    full = (1 << m) - 1
    dp = np.full((1 << m, m), np.inf)
    parent = np.full((1 << m, m), -1, dtype=np.int64)
    for j in range(m):
        dp[1 << j, j] = first[j]
    bits = 1 << np.arange(m)
    for mask in range(1, full + 1):
        if mask & (mask - 1) == 0:
            continue
        members = np.flatnonzero(mask & bits)
        candidates = dp[mask ^ bits[members]] + sub[:, members].T  # row: end at members[r], column: came from k
        best = np.argmin(candidates, axis=1)
        dp[mask, members] = candidates[np.arange(len(members)), best]
        parent[mask, members] = best
    totals = dp[full] + last
    j = int(np.argmin(totals))
    best = float(totals[j])
    order, mask = [], full
    while j >= 0:
        order.append(stops[j])
        mask, j = mask ^ (1 << j), int(parent[mask, j])
    return TspSolution(tuple(reversed(order)), best, True, "held-karp")


def _or_tools(cost: np.ndarray, start: int, end: int | None, closed: bool, time_limit_s: float) -> TspSolution:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    n = cost.shape[0]
    scaled = np.where(np.isfinite(cost), np.minimum(np.round(cost * _SCALE), _BIG), _BIG).astype(np.int64)
    if end is None and not closed:  # open tour: a dummy end reached from anywhere at no cost
        scaled = np.pad(scaled, ((0, 1), (0, 1)), constant_values=_BIG)
        scaled[:, n] = 0
        scaled[n, n] = 0
        end_node = n
    else:
        end_node = start if closed else end
    manager = pywrapcp.RoutingIndexManager(scaled.shape[0], 1, [start], [end_node])
    routing = pywrapcp.RoutingModel(manager)
    transit = routing.RegisterTransitMatrix(scaled.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(transit)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    solution = routing.SolveWithParameters(params)
    if solution is None:
        return TspSolution((), float("inf"), False, "or-tools-gls")
    order, index = [], routing.Start(0)
    while True:
        index = solution.Value(routing.NextVar(index))
        if routing.IsEnd(index):
            break
        order.append(manager.IndexToNode(index))
    if end is not None:
        order = [i for i in order if i != end]
    total = tour_cost(cost, order, start=start, end=end, closed=closed)
    return TspSolution(tuple(order), total, False, "or-tools-gls")


# -- the tour on the network ----------------------------------------------------------------------------------


def _validate(stops: Sequence[Stop], network: str, speed_mps: float | None, closed: bool, end) -> float:
    net.network_view(network)
    if not stops:
        raise InvalidInput("give at least one stop to visit")
    if len(stops) > MAX_STOPS:
        raise InvalidInput(f"at most {MAX_STOPS} stops per tour, got {len(stops)}; split the area")
    if len({s.key for s in stops}) != len(stops):
        raise InvalidInput("stop keys must be unique")
    if closed and end is not None:
        raise InvalidInput("a tour is either closed (back to start) or goes to an end point, not both")
    speed = DEFAULT_SPEED_MPS[network] if speed_mps is None else float(speed_mps)
    if not 0.1 <= speed <= 40:
        raise InvalidInput(f"speed must be between 0.1 and 40 m/s, got {speed_mps}")
    return speed


def plan_tour(session: Session, start: tuple[float, float], stops: Sequence[Stop], *,
              end: tuple[float, float] | None = None, closed: bool = False, network: str = "walk",
              speed_mps: float | None = None, time_limit_s: float | None = None, skip_unreachable: bool = False,
              margin_m: float = 500.0, max_snap_m: float = 200.0, metric_srid: int = 4547) -> Tour:
    """Plan a tour from ``start`` (lon, lat) through ``stops`` on ``network`` ('walk' or 'drive').

    ``closed``: back to start; ``end`` (lon, lat): finish there; neither: end at the last stop. Stops more than
    ``max_snap_m`` metres from the network, or with no route to or from the others, are unreachable:
    InvalidInput naming them (``detail['unreachable']`` = their keys), or, with ``skip_unreachable``, left out
    and listed in ``Tour.unreachable``. The network is loaded for ``margin_m`` metres around the points' box.
    """
    speed = _validate(stops, network, speed_mps, closed, end)
    points = [tuple(start), *((s.lon, s.lat) for s in stops)] + ([tuple(end)] if end is not None else [])
    graph = net.build_graph(session, network, points, margin_m=margin_m, max_snap_m=max_snap_m,
                            metric_srid=metric_srid)
    if graph.snaps[0].vertex is None:
        raise InvalidInput(f"the start is more than {max_snap_m:g} m from the {network} network")
    if end is not None and graph.snaps[-1].vertex is None:
        raise InvalidInput(f"the end is more than {max_snap_m:g} m from the {network} network")
    cost = net.cost_matrix(session, graph)
    end_index = len(points) - 1 if end is not None else None
    stop_indexes = list(range(1, len(stops) + 1))
    bad = [i for i in stop_indexes if not _reachable(cost, i, end_index, closed)]
    if bad and not skip_unreachable:
        keys = [stops[i - 1].key for i in bad]
        raise InvalidInput(f"{len(keys)} stop(s) cannot be reached on the {network} network: "
                           + ", ".join(map(str, keys[:20])), unreachable=keys)
    keep = [0] + [i for i in stop_indexes if i not in bad] + ([end_index] if end_index is not None else [])
    sub = cost[np.ix_(keep, keep)]
    solution = solve_tsp(sub, start=0, end=len(keep) - 1 if end is not None else None, closed=closed,
                         time_limit_s=time_limit_s)
    visit = [keep[i] for i in solution.order]
    path = [0, *visit] + ([0] if closed else [end_index] if end_index is not None else [])
    legs = net.legs(session, graph, list(itertools.pairwise(path)))
    return _tour(network, "closed" if closed else "to_end" if end is not None else "open", stops, visit, legs,
                 speed, [stops[i - 1].key for i in bad], solution)


def _reachable(cost: np.ndarray, i: int, end: int | None, closed: bool) -> bool:
    """Whether stop i can be reached from the start and, where the tour goes on, left for the end or start."""
    back = cost[i, 0] if closed else cost[i, end] if end is not None else 0.0
    return bool(np.isfinite(cost[0, i]) and np.isfinite(back))


def _key(stops: Sequence[Stop], index: int):
    return stops[index - 1].key if 1 <= index <= len(stops) else ("start" if index == 0 else "end")


def _tour(network: str, shape: str, stops: Sequence[Stop], visit: list[int], legs: list[net.Leg], speed: float,
          unreachable: list, solution: TspSolution) -> Tour:
    route_legs, coords, arrivals, walked = [], [], [], 0.0
    for leg in legs:
        route_legs.append(RouteLeg(_key(stops, leg.source), _key(stops, leg.target), leg.length_m,
                                   leg.length_m / speed, leg.geometry, leg.steps))
        part = list(leg.geometry.coords)
        coords.extend(part[1:] if coords and part[0] == coords[-1] else part)
        walked += leg.length_m
        if 1 <= leg.target <= len(stops):
            arrivals.append(walked)
    arrivals = arrivals[:len(visit)]
    geometry = LineString(coords if len(coords) > 1 else coords * 2)
    return Tour(network, shape, tuple(stops[i - 1].key for i in visit), tuple(arrivals), tuple(route_legs), walked,
                walked / speed, speed, geometry, tuple(unreachable), solution.optimal, solution.method)
