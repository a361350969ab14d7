"""Checkpoint siting: which openings of an enclosure to keep staffed (set covering and maximal covering).

* **Set covering** (LSCP): the fewest openings such that every household is within the threshold of one of them.
  Households no opening can reach within the threshold make the problem infeasible as stated: they are listed
  apart (``uncoverable``) and the problem is solved for the others, and the answer says so.
* **Maximal covering** (MCLP): exactly ``p`` openings covering the most households.

Both are exact integer programmes solved in-process by OR-Tools (CP-SAT by default, SCIP through
``pywraplp`` on request); the answer says whether optimality was proven (a time limit may stop the search
first; then ``bound`` is the best proven bound). Before building the model, demand points with identical
coverage sets are merged into one row weighted by their households (5,000 households typically collapse to a
few hundred rows), and rows no site covers are removed.

What runs where: the coverage sets (which opening reaches which building within the threshold, walking on the
footpath network by pgRouting or straight-line by PostGIS) come from the store (``store/coverage.py``), where
the network and the geometries live, and ``store/enclosure_siting.py`` asks them for an enclosure; the
optimisation is pure Python here (:func:`set_cover`, :func:`max_cover`), on plain lists, so it is tested and
benchmarked without a database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from spatial.errors import InvalidInput

PROBLEMS = ("set_cover", "max_cover")
SOLVERS = ("cp-sat", "scip")
DEFAULT_TIME_LIMIT_S = 20.0
MAX_TIME_LIMIT_S = 120.0


@dataclass(frozen=True)
class Demand:
    """Demand rows after merging: ``cover[r]`` the sites covering row r, ``weight[r]`` its households,
    ``members[r]`` the original demand indexes merged into it."""

    cover: tuple[frozenset[int], ...]
    weight: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CoverSolution:
    """A covering answer. ``sites`` are site indexes (sorted); ``objective`` the number of sites (set cover) or
    the households covered (maximal cover); ``optimal`` whether it is proven; ``bound`` the best proven bound
    on the objective; ``uncoverable`` demand indexes no allowed site covers (left out of set covering)."""

    problem: str
    sites: tuple[int, ...]
    objective: float
    optimal: bool
    bound: float
    status: str
    solver: str
    solve_s: float
    demand_points: int
    rows: int
    covered_weight: int
    total_weight: int
    uncoverable: tuple[int, ...]
    uncoverable_weight: int


def merge_demand(cover: Sequence[frozenset[int] | set[int]], weights: Sequence[int]) -> tuple[Demand, list[int]]:
    """Merge demand points with identical, non-empty coverage sets (weights add up); points with an empty
    coverage set (no site reaches them) are returned apart, as the second value.

    >>> d, empty = merge_demand([{1, 2}, {2, 1}, set(), {3}], [5, 1, 7, 2])
    >>> d.cover, d.weight, d.members, empty
    ((frozenset({1, 2}), frozenset({3})), (6, 2), ((0, 1), (3,)), [2])
    """
    if len(cover) != len(weights):
        raise InvalidInput("one weight per demand point")
    rows: dict[frozenset[int], int] = {}
    weight: list[int] = []
    members: list[list[int]] = []
    empty: list[int] = []
    for i, (sites, w) in enumerate(zip(cover, weights, strict=True)):
        if w < 0:
            raise InvalidInput("demand weights (households) cannot be negative")
        key = frozenset(sites)
        if not key:
            empty.append(i)
            continue
        r = rows.setdefault(key, len(rows))
        if r == len(weight):
            weight.append(0)
            members.append([])
        weight[r] += int(w)
        members[r].append(i)
    return Demand(tuple(rows), tuple(weight), tuple(tuple(m) for m in members)), empty


def _restrict(cover: Sequence, n_sites: int, allowed: Sequence[int] | None) -> list[frozenset[int]]:
    if allowed is None:
        return [frozenset(c) for c in cover]
    keep = frozenset(allowed)
    if not keep:
        raise InvalidInput("no candidate sites to choose from")
    if any(not 0 <= j < n_sites for j in keep):
        raise InvalidInput("a candidate site is out of range")
    return [frozenset(c) & keep for c in cover]


def _check(n_sites: int, keep: Sequence[int], time_limit_s: float, solver: str) -> None:
    if n_sites < 1:
        raise InvalidInput("there are no candidate sites (openings) to choose from")
    if any(not 0 <= j < n_sites for j in keep):
        raise InvalidInput("a site to keep is out of range")
    if not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise InvalidInput(f"time limit must be in (0, {MAX_TIME_LIMIT_S:g}] s")
    if solver not in SOLVERS:
        raise InvalidInput(f"unknown solver {solver!r}; use one of {', '.join(SOLVERS)}")


def set_cover(cover: Sequence[frozenset[int] | set[int]], weights: Sequence[int], n_sites: int, *,
              keep: Sequence[int] = (), allowed: Sequence[int] | None = None,
              time_limit_s: float = DEFAULT_TIME_LIMIT_S, solver: str = "cp-sat") -> CoverSolution:
    """The fewest sites (indexes 0 … n_sites-1) covering every coverable demand point.

    ``cover[i]`` are the sites covering demand point i; ``weights[i]`` its households (for the report only:
    set covering counts sites). ``keep``: sites that must be chosen; ``allowed``: the only sites that may be.

    >>> s = set_cover([{0}, {0, 1}, {1, 2}, {2}, set()], [1, 1, 1, 1, 4], 3)
    >>> s.sites, s.objective, s.optimal, s.uncoverable, s.covered_weight
    ((0, 2), 2.0, True, (4,), 4)
    """
    _check(n_sites, keep, time_limit_s, solver)
    cover = _restrict(cover, n_sites, allowed)
    demand, empty = merge_demand(cover, weights)
    started = time.perf_counter()
    if solver == "cp-sat":
        chosen, status, bound = _cp_sat_set_cover(demand, n_sites, keep, time_limit_s)
    else:
        chosen, status, bound = _mip(demand, n_sites, keep, time_limit_s, p=None)
    return _solution("set_cover", demand, empty, weights, chosen, status, bound, solver,
                     time.perf_counter() - started, objective=float(len(chosen)) if chosen is not None else None)


def max_cover(cover: Sequence[frozenset[int] | set[int]], weights: Sequence[int], n_sites: int, p: int, *,
              keep: Sequence[int] = (), allowed: Sequence[int] | None = None,
              time_limit_s: float = DEFAULT_TIME_LIMIT_S, solver: str = "cp-sat") -> CoverSolution:
    """Exactly ``p`` sites covering the most households (sum of ``weights`` of demand points covered).

    >>> s = max_cover([{0}, {0, 1}, {1, 2}, {2}], [5, 1, 1, 4], 3, 1)
    >>> s.sites, s.objective, s.optimal
    ((0,), 6.0, True)
    """
    _check(n_sites, keep, time_limit_s, solver)
    cover = _restrict(cover, n_sites, allowed)
    available = n_sites if allowed is None else len(set(allowed))
    if not 1 <= p <= available:
        raise InvalidInput(f"p (checkpoints to staff) must be between 1 and {available}, got {p}")
    if len(set(keep)) > p:
        raise InvalidInput(f"{len(set(keep))} sites must be kept, more than p = {p}")
    demand, empty = merge_demand(cover, weights)
    started = time.perf_counter()
    if solver == "cp-sat":
        chosen, status, bound = _cp_sat_max_cover(demand, n_sites, p, keep, allowed, time_limit_s)
    else:
        chosen, status, bound = _mip(demand, n_sites, keep, time_limit_s, p=p, allowed=allowed)
    solution = _solution("max_cover", demand, empty, weights, chosen, status, bound, solver,
                         time.perf_counter() - started, objective=None)
    return solution


def _solution(problem: str, demand: Demand, empty: list[int], weights: Sequence[int], chosen: list[int] | None,
              status: str, bound: float, solver: str, elapsed: float, objective: float | None) -> CoverSolution:
    if chosen is None:
        raise InvalidInput(f"the solver found no answer within the time limit ({status}); allow more time")
    picked = set(chosen)
    covered = sum(w for sites, w in zip(demand.cover, demand.weight, strict=True) if sites & picked)
    if objective is None:
        objective = float(covered)
    return CoverSolution(problem, tuple(sorted(chosen)), objective, status == "OPTIMAL", float(bound), status,
                         solver, elapsed, len(weights), len(demand.cover), int(covered), int(sum(weights)),
                         tuple(empty), int(sum(weights[i] for i in empty)))


def _cp_solver(time_limit_s: float):
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = 1          # one worker: deterministic, and it is the LP-guided one
    solver.parameters.linearization_level = 2  # use the linear relaxation (the bound that proves optimality)
    solver.parameters.random_seed = 1
    return solver


def _status(solver, code) -> str:
    return solver.StatusName(code)


def _cp_sat_set_cover(demand: Demand, n_sites: int, keep: Sequence[int], time_limit_s: float):
    from ortools.sat.python import cp_model

    if not demand.cover:  # nothing to cover: the kept sites alone
        return sorted(set(keep)), "OPTIMAL", float(len(set(keep)))
    model = cp_model.CpModel()
    x = [model.NewBoolVar(f"x{j}") for j in range(n_sites)]
    for sites in demand.cover:
        model.Add(sum(x[j] for j in sorted(sites)) >= 1)
    for j in set(keep):
        model.Add(x[j] == 1)
    used = sorted(set().union(*demand.cover) | set(keep))
    for j in set(range(n_sites)) - set(used):
        model.Add(x[j] == 0)     # a site covering nothing is never worth staffing
    model.Minimize(sum(x))
    solver = _cp_solver(time_limit_s)
    code = solver.Solve(model)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, _status(solver, code), float("nan")
    return [j for j in range(n_sites) if solver.Value(x[j])], _status(solver, code), solver.BestObjectiveBound()


def _cp_sat_max_cover(demand: Demand, n_sites: int, p: int, keep: Sequence[int], allowed, time_limit_s: float):
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    x = [model.NewBoolVar(f"x{j}") for j in range(n_sites)]
    y = [model.NewBoolVar(f"y{r}") for r in range(len(demand.cover))]
    for r, sites in enumerate(demand.cover):
        model.Add(sum(x[j] for j in sorted(sites)) >= y[r])   # row r counts only if a site covering it is open
    model.Add(sum(x) == p)
    for j in set(keep):
        model.Add(x[j] == 1)
    if allowed is not None:
        for j in set(range(n_sites)) - set(allowed):
            model.Add(x[j] == 0)
    model.Maximize(sum(w * yr for w, yr in zip(demand.weight, y, strict=True)))
    solver = _cp_solver(time_limit_s)
    code = solver.Solve(model)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, _status(solver, code), float("nan")
    return [j for j in range(n_sites) if solver.Value(x[j])], _status(solver, code), solver.BestObjectiveBound()


def _mip(demand: Demand, n_sites: int, keep: Sequence[int], time_limit_s: float, *, p: int | None,
         allowed=None):
    """The same models as a MIP for SCIP (``pywraplp``): set covering when ``p`` is None, else maximal covering."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    solver.SetTimeLimit(int(time_limit_s * 1000))
    x = [solver.BoolVar(f"x{j}") for j in range(n_sites)]
    for j in set(keep):
        solver.Add(x[j] == 1)
    if allowed is not None:
        for j in set(range(n_sites)) - set(allowed):
            solver.Add(x[j] == 0)
    if p is None:
        for sites in demand.cover:
            solver.Add(sum(x[j] for j in sites) >= 1)
        solver.Minimize(sum(x))
    else:
        y = [solver.BoolVar(f"y{r}") for r in range(len(demand.cover))]
        for r, sites in enumerate(demand.cover):
            solver.Add(y[r] <= sum(x[j] for j in sites))
        solver.Add(sum(x) == p)
        solver.Maximize(sum(w * yr for w, yr in zip(demand.weight, y, strict=True)))
    code = solver.Solve()
    names = {pywraplp.Solver.OPTIMAL: "OPTIMAL", pywraplp.Solver.FEASIBLE: "FEASIBLE",
             pywraplp.Solver.INFEASIBLE: "INFEASIBLE", pywraplp.Solver.NOT_SOLVED: "UNKNOWN"}
    status = names.get(code, "UNKNOWN")
    if status not in ("OPTIMAL", "FEASIBLE"):
        return None, status, float("nan")
    return ([j for j in range(n_sites) if x[j].solution_value() > 0.5], status,
            solver.Objective().BestBound())
