"""Exact tours for symmetric cost matrices (walking): a subtour-elimination MIP, proven optimal within a time limit.

The Dantzig–Fulkerson–Johnson model on undirected edges: every stop has degree 2; the MIP is solved (SCIP, in
OR-Tools), the connected pieces of the answer are found, a cut ``Σ x(S) ≤ |S| − 1`` is added for each piece, and
the MIP is solved again until the answer is one tour. On the Shatou walking network this proves the optimum of
30 stops in ~0.05 s and of 80 stops in ~1 s (``python -m benchmarks.patrol``), where guided local search stops
1–2% above it. Open tours and tours to an end point become closed ones through a dummy stop.

It complements :func:`spatial.analysis.routing.solve_tsp` (Held-Karp up to 13 stops, OR-Tools beyond) and
returns the same :class:`~spatial.analysis.routing.TspSolution`; asymmetric matrices (the driving network with
one-way streets) are not for this model.
"""

from __future__ import annotations

import itertools
import time

import networkx as nx
import numpy as np

from spatial.analysis.routing import TspSolution, tour_cost
from spatial.errors import InvalidInput

MAX_STOPS = 400


def solve_symmetric(cost: np.ndarray, *, start: int = 0, end: int | None = None, closed: bool = False,
                    time_limit_s: float = 10.0) -> TspSolution | None:
    """The optimal order through every index of a symmetric ``cost`` matrix (shapes as ``routing.solve_tsp``),
    or None if the time limit ran out before one tour was proven (callers then keep a heuristic answer).

    >>> m = np.array([[0, 1, 5, 4], [1, 0, 1, 5], [5, 1, 0, 1], [4, 5, 1, 0]], dtype=float)
    >>> solve_symmetric(m, closed=True).cost, solve_symmetric(m).order, solve_symmetric(m, end=3).order
    (7.0, (1, 2, 3), (1, 2))
    """
    cost = np.asarray(cost, dtype=float)
    n = cost.shape[0]
    if cost.shape != (n, n) or not 1 <= n <= MAX_STOPS:
        raise InvalidInput(f"the cost matrix must be square with 1 to {MAX_STOPS} rows")
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
