"""The order of a tour: the cheapest way through every index of a cost matrix (the travelling salesman).

Pure functions of a square matrix (row = from; metres, seconds or any additive cost; ``inf`` marks an arc that
cannot be used). :func:`solve_tsp` is exact by Held-Karp dynamic programming up to :data:`EXACT_MAX_STOPS`
stops; beyond, a symmetric matrix (walking) goes to :func:`solve_symmetric`, the Dantzig–Fulkerson–Johnson
subtour-elimination MIP (every stop has degree 2; SCIP in OR-Tools; a cut ``Σ x(S) ≤ |S| − 1`` added for each
piece of the answer until it is one tour), and otherwise, or when that runs out of time, OR-Tools' routing solver
(path-cheapest-arc, then guided local search within a time limit). On the Shatou walking network the MIP proves
the optimum of 30 stops in ~0.05 s and of 80 stops in ~1 s (``python -m benchmarks.patrol``), where guided local
search stops 1–2% above it. Open tours and tours to an end point become closed ones through a dummy stop.

The network side (snapping, the pgRouting cost matrix, the legs) is the store's ``tours`` module; nothing here
reads the database.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from spatial.errors import InvalidInput

EXACT_MAX_STOPS = 13       # Held-Karp up to this many stops
SYMMETRIC_MAX_STOPS = 400  # the size the MIP of solve_symmetric accepts
MIP_TRY_MAX_STOPS = 120    # solve_tsp tries the MIP up to this many stops; beyond it rarely proves in seconds
_SCALE = 10                #  OR-Tools works on integers: decimetres
_BIG = 10**9               #  an arc that must not be used


@dataclass(frozen=True)
class TspSolution:
    """A visiting order of matrix indexes, from ``start`` through every other index (and ``end`` if given).

    ``order`` lists the stops only (start and end excluded); ``cost`` is the tour's total in matrix units;
    ``optimal`` says whether it is proven optimal; ``method`` is 'trivial', 'held-karp', 'exact-dfj', 'or-tools-gls' or
    'or-tools-gls+2opt' (polished by :func:`polish_cycle`).
    """

    order: tuple[int, ...]
    cost: float
    optimal: bool
    method: str


# -- Held-Karp and guided local search ----------------------------------------------------------------------------


def solve_tsp(cost: np.ndarray, *, start: int = 0, end: int | None = None, closed: bool = False,
              time_limit_s: float | None = None) -> TspSolution:
    """Best order through every index of the square ``cost`` matrix (row = from; may be asymmetric), from
    ``start``; then back to ``start`` if ``closed``, or to ``end`` if given, else ending anywhere.

    Exact (Held-Karp) up to :data:`EXACT_MAX_STOPS` stops; beyond, for a symmetric matrix, the exact
    subtour-elimination MIP (:func:`solve_symmetric`) within ``time_limit_s``; otherwise (or if it
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
        exact = _exact_symmetric(cost, start, end, closed, limit) if len(stops) <= MIP_TRY_MAX_STOPS else None
        solution = exact or _polished(cost, _or_tools(cost, start, end, closed, limit), start, closed, limit)
    if not np.isfinite(solution.cost):
        raise InvalidInput("no order visits every stop: some of them cannot be reached from the others")
    return solution


def _exact_symmetric(cost: np.ndarray, start: int, end: int | None, closed: bool, limit: float) -> TspSolution | None:
    """For symmetric matrices (walking): the proven optimum if the subtour-elimination MIP finds it within
    ``limit`` seconds (80 stops on a real network: ~1 s, where guided local search lands 1–2% above), else None."""
    finite = np.isfinite(cost)
    if cost.shape[0] + 1 > SYMMETRIC_MAX_STOPS or not finite.all() or not np.allclose(cost, cost.T):
        return None  # too large for the model (with its dummy stop), or one-way costs
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
    first = routing_enums_pb2.FirstSolutionStrategy
    # Christofides starts closer on symmetric (walking) costs: on Shatou, 500 stops, 82.4 km against 91.5 km after
    # the same 1.5 s of guided local search (measured once, outside the benchmark); path-cheapest-arc on one-way
    # costs, where Christofides has no ground.
    symmetric = bool(np.isfinite(cost).all() and np.allclose(cost, cost.T))
    params.first_solution_strategy = first.CHRISTOFIDES if symmetric else first.PATH_CHEAPEST_ARC
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


def _polished(cost: np.ndarray, solution: TspSolution, start: int, closed: bool, limit: float) -> TspSolution:
    """A closed tour on symmetric finite costs improved by :func:`polish_cycle` for up to ``limit`` seconds (the
    solution as it was for other tours: 2-opt reverses legs, which one-way costs forbid)."""
    if not closed or not solution.order or not np.isfinite(cost).all() or not np.allclose(cost, cost.T):
        return solution
    cycle = polish_cycle(cost, np.array((start, *solution.order)), time.perf_counter() + limit)
    at = int(np.flatnonzero(cycle == start)[0])
    order = tuple(int(i) for i in np.roll(cycle, -at)[1:])
    total = tour_cost(cost, order, start=start, closed=True)
    return TspSolution(order, total, False, "or-tools-gls+2opt") if total < solution.cost else solution


def polish_cycle(cost: np.ndarray, cycle: np.ndarray, deadline: float) -> np.ndarray:
    """Best-improvement local search on a closed tour of a symmetric matrix: each round evaluates every 2-opt move
    (reverse a stretch) and every or-opt move (carry a run of 1–3 stops elsewhere, either way round) at once in
    numpy (O(n²) per round) and applies the best, until none improves or ``deadline`` (``time.perf_counter()``) is
    passed. Guided local search leaves tours of hundreds of stops where one round still finds 1–10% (Shatou, 500
    stops: 83.8 → 81.5 km in 2 s, measured once outside the benchmark).

    >>> m = np.array([[0, 1, 5, 4], [1, 0, 1, 5], [5, 1, 0, 1], [4, 5, 1, 0]], dtype=float)
    >>> polish_cycle(m, np.array([0, 2, 1, 3]), time.perf_counter() + 1).tolist()
    [0, 1, 2, 3]
    """
    t = np.asarray(cycle)
    n = len(t)
    if n < 5:
        return _held_karp_cycle(cost, t)
    idx = np.arange(n)
    offset = (idx[None, :] - idx[:, None]) % n
    two_opt = np.triu(np.ones((n, n), bool), 2)
    two_opt[0, n - 1] = False                      # the same edge pair, seen from the other end
    # an or-opt run of L stops from position i may not go after positions i-1 … i+L-1 (its own edges)
    own = {run: (offset >= n - 1) | (offset <= run - 1) for run in (1, 2, 3)}
    while time.perf_counter() < deadline:
        a, b = t, np.roll(t, -1)
        edge = cost[a, b]
        gain = np.where(two_opt, cost[np.ix_(a, a)] + cost[np.ix_(b, b)] - edge[:, None] - edge[None, :], np.inf)
        k = int(np.argmin(gain))
        best = (gain.flat[k], 0, k, False)
        for run in (1, 2, 3):
            first, last = t, t[(idx + run - 1) % n]
            before, after = t[(idx - 1) % n], t[(idx + run) % n]
            saved = cost[before, first] + cost[last, after] - cost[before, after]
            for reverse in (False, True):
                head, tail = (last, first) if reverse else (first, last)
                delta = cost[np.ix_(head, a)] + cost[np.ix_(tail, b)] - edge[None, :] - saved[:, None]
                delta[own[run]] = np.inf
                k = int(np.argmin(delta))
                if delta.flat[k] < best[0]:
                    best = (delta.flat[k], run, k, reverse)
        change, run, k, reverse = best
        if change > -1e-9:
            break
        i, j = divmod(k, n)
        if run == 0:
            t = np.concatenate([t[:i + 1], t[i + 1:j + 1][::-1], t[j + 1:]])
        else:
            rotated = np.roll(t, -i)
            moved, rest = rotated[:run][::-1] if reverse else rotated[:run], rotated[run:]
            at = (j - i - run) % n                  # where position j lies in the rest
            t = np.concatenate([rest[:at + 1], moved, rest[at + 1:]])
    return t


def _held_karp_cycle(cost: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    """The best closed order of a handful of stops, from the cycle's first."""
    first = int(cycle[0])
    rest = [int(i) for i in cycle[1:]]
    best = min(itertools.permutations(rest), key=lambda o: tour_cost(cost, o, start=first, closed=True))
    return np.array((first, *best))


# -- the exact model for symmetric matrices -----------------------------------------------------------------------


def solve_symmetric(cost: np.ndarray, *, start: int = 0, end: int | None = None, closed: bool = False,
                    time_limit_s: float = 10.0) -> TspSolution | None:
    """The optimal order through every index of a symmetric ``cost`` matrix (shapes as :func:`solve_tsp`),
    or None if the time limit ran out before one tour was proven (callers then keep a heuristic answer).

    >>> m = np.array([[0, 1, 5, 4], [1, 0, 1, 5], [5, 1, 0, 1], [4, 5, 1, 0]], dtype=float)
    >>> solve_symmetric(m, closed=True).cost, solve_symmetric(m).order, solve_symmetric(m, end=3).order
    (7.0, (1, 2, 3), (1, 2))
    """
    cost = np.asarray(cost, dtype=float)
    n = cost.shape[0]
    if cost.shape != (n, n) or not 1 <= n <= SYMMETRIC_MAX_STOPS:
        raise InvalidInput(f"the cost matrix must be square with 1 to {SYMMETRIC_MAX_STOPS} rows")
    if not np.allclose(cost, cost.T, rtol=1e-6, atol=1e-3, equal_nan=False):
        raise InvalidInput("the exact model needs a symmetric matrix (walking), not one-way costs")
    if closed and end is not None:
        raise InvalidInput("a tour is either closed (back to start) or goes to an end point, not both")
    big = 10 * float(np.nanmax(np.where(np.isfinite(cost), cost, 0)) * n + 1)
    c = np.where(np.isfinite(cost), cost, big)
    fixed = []
    if not closed:  # a dummy stop next to the start, closing the path from its last stop (open) or from end
        c = np.pad(c, ((0, 1), (0, 1)), constant_values=0.0 if end is None else big)
        c[n, start] = c[start, n] = 0.0
        if end is not None:
            c[n, end] = c[end, n] = 0.0
        c[n, n] = 0.0
        fixed.append((start, n))
    cycle = _dfj(c, time_limit_s, fixed)
    if cycle is None:
        return None
    k = cycle.index(start)
    cycle = cycle[k:] + cycle[:k]
    if not closed:
        if cycle[-1] != n:          # walk the cycle the way that leaves the dummy stop for last
            cycle = [cycle[0], *reversed(cycle[1:])]
        cycle = cycle[:-1]
    order = [i for i in cycle[1:] if i != end]
    total = tour_cost(cost, order, start=start, end=end, closed=closed)
    if not np.isfinite(total):
        raise InvalidInput("no order visits every stop: some of them cannot be reached from the others")
    return TspSolution(tuple(order), total, True, "exact-dfj")


def _dfj(c: np.ndarray, time_limit_s: float, fixed: list[tuple[int, int]] = ()) -> list[int] | None:
    """The optimal cycle through every index of symmetric ``c`` using the ``fixed`` edges (node list), or None
    when out of time."""
    from ortools.linear_solver import pywraplp

    n = len(c)
    if n <= 3:
        return list(range(n))
    solver = pywraplp.Solver.CreateSolver("SCIP")
    x = {(i, j): solver.BoolVar(f"x{i}_{j}") for i, j in itertools.combinations(range(n), 2)}
    for i in range(n):
        solver.Add(sum(x[min(i, j), max(i, j)] for j in range(n) if j != i) == 2)
    for i, j in fixed:
        solver.Add(x[min(i, j), max(i, j)] == 1)
    solver.Minimize(sum(float(c[i, j]) * v for (i, j), v in x.items()))
    deadline = time.perf_counter() + time_limit_s
    while (left := deadline - time.perf_counter()) > 0:
        solver.SetTimeLimit(max(1, int(left * 1000)))
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            return None
        graph = nx.Graph([(i, j) for (i, j), v in x.items() if v.solution_value() > 0.5])
        pieces = list(nx.connected_components(graph))
        if len(pieces) == 1:
            return [u for u, _ in nx.eulerian_circuit(graph, source=0)]
        for piece in pieces:
            inside = sorted(piece)
            solver.Add(sum(x[a, b] for a, b in itertools.combinations(inside, 2)) <= len(inside) - 1)
    return None
